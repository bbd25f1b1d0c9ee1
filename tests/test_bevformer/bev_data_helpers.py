"""Hand-made info files for the data-layer tests (docs/data_format.md).

- :func:`real_sample_info`: the real nuScenes key frame in ``tests/data/nuscenes_sample``
  as one info entry (images 1600x900 in that folder).
- :func:`write_synthetic_infos`: a few tiny scenes with small random images written to a
  temporary dataroot; every frame has a camera rig looking in six directions. The ``synth``
  fixture (tests/test_bevformer/conftest.py) writes ``SYNTH_FRAMES`` of them;
  :func:`synth_dataset` reads them with ``SYNTH_PIPELINE``.
- :func:`make_synthetic_dataroot`: a dataroot from the synthetic generator with its info files
  (the ``tiny_root`` fixture in tests/conftest.py).
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence

import cv2
import mmengine
import numpy as np

from projects.bevformer.datasets import CAMERAS, CLASSES, NuScenesBEVDataset
from projects.bevformer.geometry.boxes import matrix_to_quaternion
from projects.bevformer.geometry.camera import compose_lidar2img

from tests.shared_data import REAL_SAMPLE_DIR  # noqa: E402

#: Frames per scene of the ``synth`` fixture: scenes start at frames 0, 4 and 7; frame s1f1
#: holds no valid box of a kept class.
SYNTH_FRAMES = (4, 3, 5)
#: How the dataset, sampler and preprocessor tests read ``synth``.
SYNTH_PIPELINE = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='FilterBEVInstances', point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]),
    dict(type='MultiViewResize', scale_factor=0.5),
    dict(type='PackBEVInputs'),
]


def can_bus_from_pose(ego2global: np.ndarray) -> np.ndarray:
    """The (18,) BEVFormer can_bus with only the pose parts filled (no CAN data)."""
    can_bus = np.zeros(18)
    can_bus[0:3] = ego2global[:3, 3]
    can_bus[3:7] = matrix_to_quaternion(ego2global[:3, :3])
    yaw = np.arctan2(ego2global[1, 0], ego2global[0, 0]) % (2 * np.pi)
    can_bus[16], can_bus[17] = yaw, np.degrees(yaw)
    return can_bus


def real_sample_info() -> dict:
    """The real key frame as an info file dict (data_root = REAL_SAMPLE_DIR)."""
    with open(osp.join(REAL_SAMPLE_DIR, 'sample.json')) as f:
        sample = json.load(f)
    lidar2ego = np.array(sample['lidar2ego'])
    ego2global = np.array(sample['ego2global'])
    cams = {}
    for name in CAMERAS:
        cam = sample['cameras'][name]
        cam2img, cam2ego = np.array(cam['cam2img']), np.array(cam['cam2ego'])
        lidar2cam = np.array(cam['lidar2cam'])
        # lidar2cam = inv(cam2ego) inv(ego2global_cam) ego2global lidar2ego
        ego2global_cam = np.linalg.inv(cam2ego @ lidar2cam @ np.linalg.inv(ego2global @ lidar2ego))
        cams[name] = dict(img_path=cam['image'], sample_data_token=f'{name}-sd',
                          timestamp=cam['timestamp_us'], width=1600, height=900,
                          cam2img=cam2img, cam2ego=cam2ego, ego2global=ego2global_cam,
                          lidar2cam=lidar2cam, lidar2img=compose_lidar2img(cam2img, lidar2cam))
    instances = []
    for i, box in enumerate(sample['boxes']):
        lid = box['lidar']
        npts = box['num_lidar_pts'] + box['num_radar_pts']
        # sample.json's lidar block is our convention as is (z at the bottom face).
        instances.append(dict(
            bbox_3d=list(lid['bottom_center']) + list(lid['size_lwh']) + [lid['yaw']],
            velocity=list(lid['velocity']),
            label=CLASSES.index(box['name']) if box['name'] in CLASSES else -1,
            name=box['name'], attribute='', instance_token=f'inst-{i}',
            num_lidar_pts=box['num_lidar_pts'], num_radar_pts=box['num_radar_pts'],
            valid_flag=npts > 0))
    info = dict(token=sample['token'], scene_token='scene-0061-token', scene_name='scene-0061',
                timestamp=sample['timestamp_us'], prev='', next='', frame_idx=0,
                lidar_path=sample['lidar_file'], lidar2ego=lidar2ego, ego2global=ego2global,
                can_bus=can_bus_from_pose(ego2global), cams=cams, instances=instances)
    return dict(metainfo=dict(dataset='nuscenes', version='v1.0-mini', info_version='1.0',
                              classes=list(CLASSES), cameras=list(CAMERAS)),
                data_list=[info])


def rig_lidar2cam(yaw: float, height: float = 1.5) -> np.ndarray:
    """A camera at (0, 0, height) looking horizontally along LiDAR heading ``yaw``.

    Camera axes: z forward, x right, y down.
    """
    fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    rot = np.stack([right, down, fwd])  # rows: camera axes in LiDAR coordinates
    mat = np.eye(4)
    mat[:3, :3] = rot
    mat[:3, 3] = -rot @ np.array([0.0, 0.0, height])
    return mat


def pose(x: float, y: float, yaw: float) -> np.ndarray:
    mat = np.eye(4)
    mat[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    mat[:3, 3] = [x, y, 0.0]
    return mat


def write_synthetic_infos(root: str, frames_per_scene: Sequence[int] = (4, 3, 5),
                          img_hw: Sequence[int] = (48, 64),
                          empty_frames: Sequence[str] = (),
                          file_name: str = 'infos.pkl', seed: int = 0) -> str:
    """Write tiny scenes (random images, 3 boxes per frame) and their info pickle.

    Tokens are ``'s{scene}f{frame}'``; a frame whose token is in ``empty_frames`` gets only a
    box with label -1 and one with valid_flag False.

    Returns:
        str: the info pickle path.
    """
    rng = np.random.default_rng(seed)
    h, w = img_hw
    focal = w / 2
    cam2img = np.array([[focal, 0, w / 2], [0, focal, h / 2], [0, 0, 1.0]])
    yaws = [0.0, -np.pi / 3, np.pi / 3, np.pi, 2 * np.pi / 3, -2 * np.pi / 3]
    data_list: List[Dict] = []
    t0 = 1_500_000_000_000_000
    for s, count in enumerate(frames_per_scene):
        for f in range(count):
            token = f's{s}f{f}'
            cams = {}
            for c, name in enumerate(CAMERAS):
                rel = osp.join('samples', name, f'{token}.jpg')
                os.makedirs(osp.join(root, 'samples', name), exist_ok=True)
                img = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
                cv2.imwrite(osp.join(root, rel), img)
                lidar2cam = rig_lidar2cam(yaws[c])
                cams[name] = dict(img_path=rel, sample_data_token=f'{token}-{name}',
                                  timestamp=t0 + s * 10**8 + f * 500_000, width=w, height=h,
                                  cam2img=cam2img, cam2ego=np.linalg.inv(lidar2cam),
                                  ego2global=pose(f * 2.0, s * 100.0, 0.1 * f),
                                  lidar2cam=lidar2cam,
                                  lidar2img=compose_lidar2img(cam2img, lidar2cam))
            ego2global = pose(f * 2.0, s * 100.0, 0.1 * f)
            if token in empty_frames:
                instances = [
                    dict(bbox_3d=[5.0, 0, -1.5, 4, 2, 1.5, 0], velocity=[0.0, 0.0], label=-1,
                         name='animal', attribute='', instance_token='i0', num_lidar_pts=3,
                         num_radar_pts=0, valid_flag=True),
                    dict(bbox_3d=[8.0, 1, -1.5, 4, 2, 1.5, 0], velocity=[0.0, 0.0], label=0,
                         name='car', attribute='', instance_token='i1', num_lidar_pts=0,
                         num_radar_pts=0, valid_flag=False)]
            else:
                instances = [
                    dict(bbox_3d=[10.0 + f, 2.0, -1.5, 4.2, 1.9, 1.6, 0.1], velocity=[1.0, 0.0],
                         label=0, name='car', attribute='vehicle.moving', instance_token='c',
                         num_lidar_pts=20, num_radar_pts=1, valid_flag=True),
                    dict(bbox_3d=[-6.0, -3.0, -1.7, 0.6, 0.6, 1.8, 3.5],
                         velocity=[float('nan'), float('nan')], label=8, name='pedestrian',
                         attribute='', instance_token='p', num_lidar_pts=5, num_radar_pts=0,
                         valid_flag=True),
                    dict(bbox_3d=[70.0, 0.0, -1.5, 4.0, 2.0, 1.5, 0.0], velocity=[0.0, 0.0],
                         label=1, name='truck', attribute='', instance_token='far',
                         num_lidar_pts=2, num_radar_pts=0, valid_flag=True)]
            data_list.append(dict(
                token=token, scene_token=f'scene{s}', scene_name=f'scene-{s:04d}',
                timestamp=t0 + s * 10**8 + f * 500_000,
                prev=f's{s}f{f - 1}' if f > 0 else '',
                next=f's{s}f{f + 1}' if f + 1 < count else '', frame_idx=f,
                lidar_path='', lidar2ego=np.eye(4), ego2global=ego2global,
                can_bus=can_bus_from_pose(ego2global), cams=cams, instances=instances))
    path = osp.join(root, file_name)
    mmengine.dump(dict(metainfo=dict(dataset='nuscenes', version='v1.0-synth',
                                     info_version='1.0', classes=list(CLASSES),
                                     cameras=list(CAMERAS)),
                       data_list=data_list), path)
    return path


def write_infos(infos: dict, path: str) -> str:
    mmengine.dump(infos, path)
    return path


def synth_dataset(synth, **kw) -> NuScenesBEVDataset:
    """The dataset over the ``synth`` fixture's ``(root, info path)``: SYNTH_PIPELINE, a queue
    of 3; ``kw`` overrides."""
    root, path = synth
    args = dict(ann_file=path, data_root=root, pipeline=SYNTH_PIPELINE, queue_length=3)
    args.update(kw)
    return NuScenesBEVDataset(**args)


def make_synthetic_dataroot(root: str, num_scenes: int = 2, frames_per_scene: int = 3):
    """A tiny dataroot from the synthetic generator plus its info files (helper-3's code).

    Returns:
        tuple: ``(root, {'train': path, 'val': path})``.
    """
    from projects.bevformer.synthetic import generate_synthetic_nuscenes
    from tools.dataset_converters.nuscenes_converter import create_nuscenes_infos
    generate_synthetic_nuscenes(root, num_scenes=num_scenes, num_val_scenes=1,
                                frames_per_scene=frames_per_scene, objects_per_frame=6,
                                image_scale=0.1, lidar_beams=8, lidar_azimuth_steps=90,
                                verbose=False)
    return root, create_nuscenes_infos(root, root, version='v1.0-mini', progress=False)
