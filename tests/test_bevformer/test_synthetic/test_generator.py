"""The synthetic nuScenes generator (projects/bevformer/synthetic): the devkit loads its tables,
CAN bus and layout; it is deterministic; LiDAR returns and rendered silhouettes agree with the
boxes. ``dataroot`` comes from conftest.py."""
import json
import os
import os.path as osp

import cv2
import mmengine
import numpy as np
import pytest
from nuscenes.can_bus.can_bus_api import NuScenesCanBus
from shapely.geometry import Point, Polygon

from projects.bevformer.constants import CAMERAS, CLASSES
from projects.bevformer.geometry.boxes import (box_corners, lidar_boxes_to_global,
                                               quaternion_to_yaw, yaw_to_quaternion)
from projects.bevformer.geometry.camera import compose_lidar2img
from projects.bevformer.synthetic import generate_synthetic_nuscenes
from projects.bevformer.synthetic.lidar import GROUND_INTENSITY
from tests.test_bevformer.test_synthetic.conftest import SCALE


def test_devkit_loads_generated_tables(dataroot):
    root, summary, _, nusc = dataroot
    assert len(nusc.scene) == 3 and len(nusc.sample) == 9 == summary['num_samples']
    assert {s['name'] for s in nusc.scene} == {'scene-0061', 'scene-0553', 'scene-0103'}
    assert len(nusc.sample_annotation) == summary['num_annotations'] >= 9 * 6
    for name in ('category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor',
                 'ego_pose', 'log', 'scene', 'sample', 'sample_data', 'sample_annotation', 'map'):
        assert osp.isfile(osp.join(root, 'v1.0-mini', f'{name}.json'))
    assert osp.isfile(osp.join(root, nusc.map[0]['filename']))
    width, height = round(1600 * SCALE), round(900 * SCALE)
    for sample in nusc.sample:
        assert set(sample['data']) == set(CAMERAS) | {'LIDAR_TOP'}
        for channel, token in sample['data'].items():
            sd = nusc.get('sample_data', token)
            path = osp.join(root, sd['filename'])
            assert osp.isfile(path), path
            if channel == 'LIDAR_TOP':
                pts = np.fromfile(path, np.float32)
                assert pts.size % 5 == 0 and pts.size > 0
            else:
                img = cv2.imread(path)
                assert img.shape == (height, width, 3)
                assert (sd['width'], sd['height']) == (width, height)
                cs = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
                assert np.array(cs['camera_intrinsic'])[0, 0] == pytest.approx(
                    {'CAM_BACK': 809.2209905677063}.get(channel, 1250) * SCALE, rel=0.03)
    # every detection class appears, with moving objects (finite velocity) and attributes
    names = {a['category_name'] for a in nusc.sample_annotation}
    from nuscenes.eval.detection.utils import category_to_detection_name
    assert {category_to_detection_name(n) for n in names} >= set(CLASSES)
    speeds = [np.linalg.norm(nusc.box_velocity(a['token'])[:2])
              for a in nusc.sample_annotation]
    assert np.nanmax(speeds) > 2.0 and np.nanmin(speeds) < 0.05
    with_points = np.mean([a['num_lidar_pts'] > 0 for a in nusc.sample_annotation])
    assert with_points > 0.8
    # 2 Hz key frames in µs
    for scene in nusc.scene:
        s0 = nusc.get('sample', scene['first_sample_token'])
        s1 = nusc.get('sample', s0['next'])
        assert abs(s1['timestamp'] - s0['timestamp'] - 500_000) < 5_000


def test_can_bus_and_layout(dataroot):
    root, summary, _, nusc = dataroot
    can = NuScenesCanBus(dataroot=root)
    with open(osp.join(root, 'maps', 'synthetic_layout.json')) as f:
        layout = json.load(f)
    for scene in nusc.scene:
        msgs = can.get_messages(scene['name'], 'pose', print_warnings=False)
        assert {'accel', 'orientation', 'pos', 'rotation_rate', 'utime', 'vel'} <= set(msgs[0])
        first = nusc.get('sample', scene['first_sample_token'])
        assert msgs[0]['utime'] < first['timestamp'] < msgs[-1]['utime']
        # the ego drives on the drivable area of its scene's layout
        area = [Polygon(p) for p in layout['scenes'][scene['name']]['drivable_area']]
        assert area and layout['scenes'][scene['name']]['log_token'] == scene['log_token']
        sample = first
        while True:
            pose = nusc.get('ego_pose', nusc.get('sample_data',
                                                 sample['data']['LIDAR_TOP'])['ego_pose_token'])
            assert any(p.contains(Point(pose['translation'][:2])) for p in area)
            if not sample['next']:
                break
            sample = nusc.get('sample', sample['next'])


def test_generator_is_deterministic(tmp_path):
    """Same seed, same bytes, whether the scenes render in one process or in two."""
    kwargs = dict(num_scenes=2, frames_per_scene=2, objects_per_frame=3, image_scale=0.04,
                  seed=7, verbose=False, version='v1.0-mini')
    generate_synthetic_nuscenes(str(tmp_path / 'a'), **kwargs)
    generate_synthetic_nuscenes(str(tmp_path / 'b'), workers=2, **kwargs)
    rels = [osp.join('v1.0-mini', f) for f in sorted(os.listdir(tmp_path / 'a' / 'v1.0-mini'))]
    assert len(rels) == 13
    rels.append('maps/synthetic_layout.json')
    for sensor in ('CAM_FRONT', 'CAM_BACK_LEFT', 'LIDAR_TOP'):
        files = sorted(os.listdir(tmp_path / 'a' / 'samples' / sensor))
        assert len(files) == 4 and files == sorted(os.listdir(tmp_path / 'b' / 'samples' / sensor))
        rels += [osp.join('samples', sensor, f) for f in files]
    rels += [osp.join('can_bus', f) for f in sorted(os.listdir(tmp_path / 'a' / 'can_bus'))]
    for rel in rels:
        assert (tmp_path / 'a' / rel).read_bytes() == (tmp_path / 'b' / rel).read_bytes(), rel
    other = generate_synthetic_nuscenes(str(tmp_path / 'c'), **{**kwargs, 'seed': 8})
    assert (tmp_path / 'a' / 'v1.0-mini/sample_annotation.json').read_bytes() != \
        (tmp_path / 'c' / 'v1.0-mini/sample_annotation.json').read_bytes()
    assert other['num_samples'] == 4


def test_lidar_points_fall_in_their_boxes(dataroot):
    """num_lidar_pts equals the object returns of the .pcd.bin inside each box (LiDAR frame).

    The boxes are yaw-only in the slightly tilted LiDAR frame (roll / pitch dropped, as in
    real nuScenes infos), so a box's points may stick out by a few cm: 10 cm slack, and
    up to 5 % of a long box's points may still be outside.
    """
    root, _, paths, _ = dataroot
    matched = total = 0
    for info in mmengine.load(paths['train'])['data_list']:
        pts = np.fromfile(osp.join(root, info['lidar_path']), np.float32).reshape(-1, 5)
        assert (pts[:, 3] == GROUND_INTENSITY).mean() > 0.3  # the ground is scanned too
        pts = pts[pts[:, 3] != GROUND_INTENSITY, :3]
        for inst in info['instances']:
            x, y, z, length, width, height, yaw = inst['bbox_3d']
            local = pts - np.array([x, y, z])
            c, s = np.cos(yaw), np.sin(yaw)
            u, v = c * local[:, 0] + s * local[:, 1], -s * local[:, 0] + c * local[:, 1]
            eps = 0.1
            inside = (np.abs(u) <= length / 2 + eps) & (np.abs(v) <= width / 2 + eps) & \
                (local[:, 2] >= -eps) & (local[:, 2] <= height + eps)
            n = inst['num_lidar_pts']
            matched += int(inside.sum() == n)
            total += 1
            # long boxes (bus, trailer) lose a few end points to the tilt
            assert abs(int(inside.sum()) - n) <= 0.05 * n, (inst['name'], inside.sum(), n)
    assert matched / total > 0.85, (matched, total)


@pytest.mark.parametrize('cam', ['CAM_FRONT', 'CAM_BACK_LEFT'])
def test_rendered_silhouette_matches_lidar2img_projection(cam):
    """The renderer's ray cast and the converter's lidar2img agree on where a box is."""
    from projects.bevformer.synthetic.poses import pose_from_quat
    from projects.bevformer.synthetic.raycast import ray_box_intersect
    from projects.bevformer.synthetic.render import CameraModel
    from projects.bevformer.synthetic.rig import LIDAR_TOP, RIG
    scale = 0.25
    width, height = 400, 225
    translation, rotation, f, cx, cy = RIG[cam]
    intrinsic = np.array([[f * scale, 0, cx * scale], [0, f * scale, cy * scale], [0, 0, 1]])
    # a level LiDAR (the real one is tilted by ~1 deg, which yaw-only boxes cannot follow)
    cam2ego = pose_from_quat(translation, rotation)
    lidar2ego = pose_from_quat(LIDAR_TOP[0], yaw_to_quaternion(-np.pi / 2))
    model = CameraModel(width, height, intrinsic, cam2ego)
    # a box 12 m along the camera's optical axis, in the LiDAR frame (x, y, z_bottom, l, w, h, yaw)
    axis_ego = cam2ego[:3, :3] @ np.array([0.3, 0.1, 1.0])
    centre_ego = cam2ego[:3, 3] + 12 * axis_ego / np.linalg.norm(axis_ego)
    centre_ego[2] = 0.0
    bottom_lidar = np.linalg.inv(lidar2ego) @ np.append(centre_ego, 1.0)
    box = np.array([[*bottom_lidar[:3], 4.5, 1.9, 1.6, 0.7]])
    glob = lidar_boxes_to_global(box, lidar2ego)  # ego == global here
    t, *_ = ray_box_intersect(model.origin_ego, model.dirs_ego, glob['center'][0],
                              float(quaternion_to_yaw(glob['rotation'][0])),
                              glob['size_wlh'][0][[1, 0, 2]] / 2)
    rendered = np.isfinite(t).reshape(height, width)
    # the converter's lidar2img (ego pose = identity)
    lidar2img = compose_lidar2img(intrinsic, np.linalg.inv(cam2ego) @ lidar2ego)
    corners = box_corners(box)[0]
    p = np.concatenate([corners, np.ones((8, 1))], 1) @ lidar2img.T
    assert (p[:, 2] > 0).all()
    uv = p[:, :2] / p[:, 2:3]
    hull = cv2.convexHull(np.round(uv * 16).astype(np.int32))
    projected = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(projected, hull, 1, shift=4)
    inter = (rendered & (projected > 0)).sum()
    union = (rendered | (projected > 0)).sum()
    assert rendered.sum() > 500
    assert inter / union > 0.94, inter / union  # pixel-centre vs polygon fill at the edges
    # a 20 cm error (e.g. centre vs bottom in z) would be visible
    shifted = box.copy()
    shifted[0, 2] += 0.2
    q = np.concatenate([box_corners(shifted)[0], np.ones((8, 1))], 1) @ lidar2img.T
    moved = np.zeros_like(projected)
    cv2.fillConvexPoly(moved, cv2.convexHull(np.round(q[:, :2] / q[:, 2:3] * 16).astype(
        np.int32)), 1, shift=4)
    assert (rendered & (moved > 0)).sum() / (rendered | (moved > 0)).sum() < inter / union - 0.03
