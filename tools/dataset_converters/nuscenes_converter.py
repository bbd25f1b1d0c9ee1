"""nuScenes dataroot -> our info files (docs/data_format.md), built on the nuScenes devkit
(``tools/create_data.py nuscenes`` runs it).

:func:`create_nuscenes_infos` reads a dataroot with ``nuscenes.NuScenes`` (and the CAN bus
with ``NuScenesCanBus`` when ``<can_bus_root>/can_bus`` exists), and writes
``<out_dir>/<tag>_infos_train.pkl`` and ``_val.pkl`` (``_test.pkl`` for v1.0-test).
"""
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np

from projects.bevformer.constants import CAMERAS, CLASSES
from projects.bevformer.geometry.boxes import global_boxes_to_lidar, pose_matrix
from projects.bevformer.geometry.camera import compose_lidar2img
from projects.bevformer.geometry.ego_motion import can_bus_vector

INFO_VERSION = '1.0'
# The devkit's split names of each release: (train split, val split) or (test split,).
SPLITS = {'v1.0-mini': ('mini_train', 'mini_val'), 'v1.0-trainval': ('train', 'val'),
          'v1.0-test': ('test',)}


def split_scene_names(version: str) -> Dict[str, List[str]]:
    """``{'train': [...], 'val': [...]}`` (or ``{'test': [...]}``) scene names of a release."""
    from nuscenes.utils.splits import create_splits_scenes
    if version not in SPLITS:
        raise ValueError(f'version must be one of {sorted(SPLITS)}, got {version!r}')
    splits = create_splits_scenes()
    names = SPLITS[version]
    if len(names) == 1:
        return {'test': list(splits[names[0]])}
    return {'train': list(splits[names[0]]), 'val': list(splits[names[1]])}


class CanBusReader:
    """The 18-value BEVFormer ``can_bus`` vector per sample (docs/data_format.md).

    Args:
        can_bus_root (str, optional): directory containing ``can_bus/``; when it or a
            scene's pose file is missing, the CAN part ([7:16]) is zeros.
    """

    def __init__(self, can_bus_root: Optional[str]) -> None:
        self.api = None
        self._cache: Dict[str, Optional[list]] = {}
        if can_bus_root is not None and osp.isdir(osp.join(can_bus_root, 'can_bus')):
            from nuscenes.can_bus.can_bus_api import NuScenesCanBus
            self.api = NuScenesCanBus(dataroot=can_bus_root)
        elif can_bus_root is not None:
            warnings.warn(f'no CAN bus data at {osp.join(can_bus_root, "can_bus")}: the CAN '
                          f'part of can_bus (accel, rotation rate, velocity) is zero')

    def messages(self, scene_name: str) -> Optional[list]:
        if self.api is None:
            return None
        if scene_name not in self._cache:
            try:
                self._cache[scene_name] = self.api.get_messages(scene_name, 'pose',
                                                                print_warnings=False)
            except Exception as err:  # blacklisted scenes and missing files raise
                warnings.warn(f'no CAN bus pose for {scene_name}: {err}')
                self._cache[scene_name] = None
        return self._cache[scene_name]

    def vector(self, scene_name: str, timestamp: int, translation: Sequence[float],
               rotation_wxyz: Sequence[float]) -> np.ndarray:
        """(18,) float64: pose from the ego pose record, CAN values from the last message
        at or before ``timestamp`` (µs)."""
        can = None
        msgs = self.messages(scene_name)
        if msgs:
            times = np.array([m['utime'] for m in msgs])
            i = max(int(np.searchsorted(times, timestamp, side='right')) - 1, 0)
            m = msgs[i]
            can = list(m['accel']) + list(m['rotation_rate']) + list(m['vel'])
        return can_bus_vector(translation, rotation_wxyz, can)


def info_file(data_list: List[dict], version: str) -> dict:
    """The info file around per-sample dicts: sorted by (scene, timestamp), ``frame_idx``
    counted per scene, our metainfo (docs/data_format.md)."""
    data_list.sort(key=lambda i: (i['scene_name'], i['timestamp']))
    frame, last_scene = 0, None
    for info in data_list:
        frame = frame + 1 if info['scene_token'] == last_scene else 0
        info['frame_idx'] = frame
        last_scene = info['scene_token']
    return dict(metainfo=dict(dataset='nuscenes', version=version, info_version=INFO_VERSION,
                              classes=list(CLASSES), cameras=list(CAMERAS)),
                data_list=data_list)


def _require_file(root: str, rel_path: str, what: str) -> None:
    if not osp.isfile(osp.join(root, rel_path)):
        raise FileNotFoundError(f'{what} file missing: {osp.join(root, rel_path)}')


def sample_info(nusc, sample: dict, can_bus: CanBusReader, with_annotations: bool = True,
                check_files: bool = True) -> dict:
    """One entry of ``data_list`` (without ``frame_idx``) for a devkit sample record."""
    from nuscenes.eval.detection.utils import category_to_detection_name
    root = nusc.dataroot
    scene = nusc.get('scene', sample['scene_token'])
    lidar_sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
    lidar_cs = nusc.get('calibrated_sensor', lidar_sd['calibrated_sensor_token'])
    lidar_pose = nusc.get('ego_pose', lidar_sd['ego_pose_token'])
    lidar2ego = pose_matrix(lidar_cs['translation'], lidar_cs['rotation'])
    ego2global = pose_matrix(lidar_pose['translation'], lidar_pose['rotation'])
    lidar2global = ego2global @ lidar2ego
    if check_files:
        _require_file(root, lidar_sd['filename'], 'LIDAR_TOP')
    info = dict(
        token=sample['token'], scene_token=sample['scene_token'], scene_name=scene['name'],
        timestamp=int(sample['timestamp']), prev=sample['prev'], next=sample['next'],
        lidar_path=lidar_sd['filename'], lidar2ego=lidar2ego, ego2global=ego2global,
        can_bus=can_bus.vector(scene['name'], sample['timestamp'], lidar_pose['translation'],
                               lidar_pose['rotation']),
        cams={})
    for cam in CAMERAS:
        if cam not in sample['data']:
            raise KeyError(f'sample {sample["token"]} has no {cam} sample_data')
        sd = nusc.get('sample_data', sample['data'][cam])
        cs = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
        pose = nusc.get('ego_pose', sd['ego_pose_token'])
        if check_files:
            _require_file(root, sd['filename'], cam)
        cam2img = np.asarray(cs['camera_intrinsic'], dtype=np.float64)
        if cam2img.shape != (3, 3):
            raise ValueError(f'calibrated_sensor {cs["token"]} ({cam}): camera_intrinsic '
                             f'expected shape (3, 3), got {cam2img.shape}')
        cam2ego = pose_matrix(cs['translation'], cs['rotation'])
        cam_ego2global = pose_matrix(pose['translation'], pose['rotation'])
        # the ego moves between the LiDAR and the camera timestamps
        lidar2cam = np.linalg.inv(cam2ego) @ np.linalg.inv(cam_ego2global) @ lidar2global
        info['cams'][cam] = dict(
            img_path=sd['filename'], sample_data_token=sd['token'],
            timestamp=int(sd['timestamp']), width=int(sd['width']), height=int(sd['height']),
            cam2img=cam2img, cam2ego=cam2ego, ego2global=cam_ego2global, lidar2cam=lidar2cam,
            lidar2img=compose_lidar2img(cam2img, lidar2cam))
    info['instances'] = _instances(nusc, sample, lidar2global, category_to_detection_name) \
        if with_annotations else []
    return info


def _instances(nusc, sample: dict, lidar2global: np.ndarray, to_detection_name) -> List[dict]:
    anns = [nusc.get('sample_annotation', t) for t in sample['anns']]
    if not anns:
        return []
    velocity = np.array([nusc.box_velocity(a['token'])[:2] for a in anns])
    boxes = global_boxes_to_lidar(
        np.array([a['translation'] for a in anns]), np.array([a['size'] for a in anns]),
        np.array([a['rotation'] for a in anns]), velocity, lidar2global)
    out = []
    for ann, box in zip(anns, boxes):
        det_name = to_detection_name(ann['category_name'])
        if len(ann['attribute_tokens']) > 1:
            raise ValueError(f'sample_annotation {ann["token"]} has '
                             f'{len(ann["attribute_tokens"])} attributes, expected <= 1')
        attribute = nusc.get('attribute', ann['attribute_tokens'][0])['name'] \
            if ann['attribute_tokens'] else ''
        n_lidar, n_radar = int(ann['num_lidar_pts']), int(ann['num_radar_pts'])
        out.append(dict(
            bbox_3d=box[:7].tolist(), velocity=box[7:9].tolist(),
            label=CLASSES.index(det_name) if det_name is not None else -1,
            name=det_name if det_name is not None else ann['category_name'],
            attribute=attribute, instance_token=ann['instance_token'],
            num_lidar_pts=n_lidar, num_radar_pts=n_radar, valid_flag=n_lidar + n_radar > 0))
    return out


def create_nuscenes_infos(root_path: str, out_dir: str, version: str = 'v1.0-mini',
                          extra_tag: str = 'nuscenes', can_bus_root: Optional[str] = None,
                          progress: bool = True) -> Dict[str, str]:
    """Write the info files of a nuScenes release.

    Args:
        root_path (str): the dataroot (contains ``<version>/``, ``samples/``, ...).
        out_dir (str): where the pickles go.
        version (str): 'v1.0-mini', 'v1.0-trainval' or 'v1.0-test'.
        extra_tag (str): file name prefix.
        can_bus_root (str, optional): directory containing ``can_bus/``; defaults to
            ``root_path``.
        progress (bool): show a tqdm progress bar.

    Returns:
        dict: split name -> path of the written pickle.
    """
    import mmengine
    from nuscenes import NuScenes
    from tqdm import tqdm

    if not osp.isdir(osp.join(root_path, version)):
        raise FileNotFoundError(f'no nuScenes tables at {osp.join(root_path, version)}')
    nusc = NuScenes(version=version, dataroot=root_path, verbose=False)
    can_bus = CanBusReader(root_path if can_bus_root is None else can_bus_root)
    splits = split_scene_names(version)
    scene_split = {name: split for split, names in splits.items() for name in names}
    with_annotations = version != 'v1.0-test'
    per_split: Dict[str, List[dict]] = {split: [] for split in splits}
    skipped = set()
    for sample in tqdm(nusc.sample, desc=f'{version} infos', disable=not progress):
        scene_name = nusc.get('scene', sample['scene_token'])['name']
        split = scene_split.get(scene_name)
        if split is None:
            skipped.add(scene_name)
            continue
        per_split[split].append(sample_info(nusc, sample, can_bus, with_annotations))
    if skipped:
        warnings.warn(f'{len(skipped)} scenes are in no {version} split and were skipped: '
                      f'{sorted(skipped)[:5]}...')
    mmengine.mkdir_or_exist(out_dir)
    paths = {}
    for split, infos in per_split.items():
        data = info_file(infos, version)
        path = osp.join(out_dir, f'{extra_tag}_infos_{split}.pkl')
        mmengine.dump(data, path)
        paths[split] = path
        print(f'{split}: {len(infos)} samples -> {path}', flush=True)
    return paths
