"""Info files written the way other projects' converters write them, from a nuScenes dataroot,
for the tests of tools/dataset_converters/foreign_infos.py.

Independent of our converter and geometry: the nuScenes devkit (``get_sample_data`` boxes,
``box_velocity``, ``NuScenesCanBus``) and pyquaternion, following

- :func:`write_bevformer_infos`: fundamentalvision/BEVFormer
  ``tools/data_converter/nuscenes_converter.py`` (``create_nuscenes_infos``,
  ``_fill_trainval_infos``, ``obtain_sensor2top``, ``_get_can_bus_info``) ->
  ``<prefix>_infos_temporal_{train,val}.pkl``;
- :func:`write_mmdet3d_v2_infos`: open-mmlab/mmdetection3d 1.x
  ``tools/dataset_converters/nuscenes_converter.py`` then ``update_infos_to_v2.py``
  (``update_nuscenes_infos``) -> ``<prefix>_infos_{train,val}.pkl``.

Their quirks are reproduced on purpose: paths as ``<dataroot>/samples/...``, the v0.17 box
``(x, y, z_centre, w, l, h, -yaw - pi / 2)``, BEVFormer's CAN values from the first message
after the key frame and its pose part from the CAN message, mmdet3d 1.x's ``(x, y, z_centre,
l, w, h, yaw)``, float32 matrices as lists, file names without folders, timestamps in seconds.
"""
import os
import os.path as osp
from typing import Dict

import numpy as np
from pyquaternion import Quaternion

CAMERA_TYPES = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT',
                'CAM_BACK_RIGHT')
#: mmdet3d's NuScenesDataset.NameMapping (v0.17 and 1.x)
NAME_MAPPING = {
    'movable_object.barrier': 'barrier', 'vehicle.bicycle': 'bicycle',
    'vehicle.bus.bendy': 'bus', 'vehicle.bus.rigid': 'bus', 'vehicle.car': 'car',
    'vehicle.construction': 'construction_vehicle', 'vehicle.motorcycle': 'motorcycle',
    'human.pedestrian.adult': 'pedestrian', 'human.pedestrian.child': 'pedestrian',
    'human.pedestrian.construction_worker': 'pedestrian',
    'human.pedestrian.police_officer': 'pedestrian',
    'movable_object.trafficcone': 'traffic_cone', 'vehicle.trailer': 'trailer',
    'vehicle.truck': 'truck'}
MMDET3D_CLASSES = ('car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle',
                   'motorcycle', 'pedestrian', 'traffic_cone', 'barrier')
SPLITS = {'v1.0-mini': ('mini_train', 'mini_val'), 'v1.0-trainval': ('train', 'val')}


def _split_tokens(nusc, version):
    from nuscenes.utils import splits
    train_names, val_names = (getattr(splits, s) for s in SPLITS[version])
    by_name = {s['name']: s['token'] for s in nusc.scene}
    return ({by_name[n] for n in train_names if n in by_name},
            {by_name[n] for n in val_names if n in by_name})


def _sensor_record(nusc, sd_token, l2e_t, l2e_r_mat, e2g_t, e2g_r_mat, sensor_type):
    """obtain_sensor2top: a camera / sweep record with its rotation and translation into the
    key frame's LiDAR (``points @ R.T + T``)."""
    sd = nusc.get('sample_data', sd_token)
    cs = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
    pose = nusc.get('ego_pose', sd['ego_pose_token'])
    data_path = str(nusc.get_sample_data_path(sd['token']))
    if os.getcwd() in data_path:
        data_path = data_path.split(f'{os.getcwd()}/')[-1]
    rec = dict(data_path=data_path, type=sensor_type, sample_data_token=sd['token'],
               sensor2ego_translation=cs['translation'], sensor2ego_rotation=cs['rotation'],
               ego2global_translation=pose['translation'], ego2global_rotation=pose['rotation'],
               timestamp=sd['timestamp'])
    s2e_r = Quaternion(cs['rotation']).rotation_matrix
    se2g_r = Quaternion(pose['rotation']).rotation_matrix
    to_lidar = np.linalg.inv(e2g_r_mat).T @ np.linalg.inv(l2e_r_mat).T
    rot = (s2e_r.T @ se2g_r.T) @ to_lidar
    trans = (np.array(cs['translation']) @ se2g_r.T + np.array(pose['translation'])) @ to_lidar
    trans -= np.array(e2g_t) @ to_lidar + np.array(l2e_t) @ np.linalg.inv(l2e_r_mat).T
    rec['sensor2lidar_rotation'] = rot.T
    rec['sensor2lidar_translation'] = trans
    return rec


def _bevformer_can_bus(nusc, can_api, sample):
    """_get_can_bus_info as written: pose/orientation of the last message at or before the
    key frame, then the other fields of the loop variable (the first message after it)."""
    scene_name = nusc.get('scene', sample['scene_token'])['name']
    try:
        pose_list = can_api.get_messages(scene_name, 'pose')
    except Exception:
        return np.zeros(18)
    last_pose = pose_list[0]
    for pose in pose_list:
        if pose['utime'] > sample['timestamp']:
            break
        last_pose = pose
    last_pose.pop('utime')
    can_bus = list(last_pose.pop('pos')) + list(last_pose.pop('orientation'))
    for key in last_pose.keys():
        can_bus.extend(pose[key])
    can_bus.extend([0., 0.])
    return np.array(can_bus)


def _v1_info(nusc, sample, max_sweeps):
    """The sample part both projects share (mmdet3d's nuScenes converter)."""
    lidar_token = sample['data']['LIDAR_TOP']
    sd = nusc.get('sample_data', lidar_token)
    cs = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
    pose = nusc.get('ego_pose', sd['ego_pose_token'])
    lidar_path, boxes, _ = nusc.get_sample_data(lidar_token)
    info = dict(lidar_path=lidar_path, token=sample['token'], sweeps=[], cams={},
                lidar2ego_translation=cs['translation'], lidar2ego_rotation=cs['rotation'],
                ego2global_translation=pose['translation'], ego2global_rotation=pose['rotation'],
                timestamp=sample['timestamp'])
    l2e_r_mat = Quaternion(cs['rotation']).rotation_matrix
    e2g_r_mat = Quaternion(pose['rotation']).rotation_matrix
    args = (cs['translation'], l2e_r_mat, pose['translation'], e2g_r_mat)
    for cam in CAMERA_TYPES:
        _, _, intrinsic = nusc.get_sample_data(sample['data'][cam])
        rec = _sensor_record(nusc, sample['data'][cam], *args, cam)
        rec.update(cam_intrinsic=intrinsic)
        info['cams'][cam] = rec
    sweep_sd = sd
    while len(info['sweeps']) < max_sweeps and sweep_sd['prev'] != '':
        info['sweeps'].append(_sensor_record(nusc, sweep_sd['prev'], *args, 'lidar'))
        sweep_sd = nusc.get('sample_data', sweep_sd['prev'])
    anns = [nusc.get('sample_annotation', t) for t in sample['anns']]
    locs = np.array([b.center for b in boxes]).reshape(-1, 3)
    dims = np.array([b.wlh for b in boxes]).reshape(-1, 3)
    rots = np.array([b.orientation.yaw_pitch_roll[0] for b in boxes]).reshape(-1, 1)
    velocity = np.array([nusc.box_velocity(t)[:2] for t in sample['anns']]).reshape(-1, 2)
    for i in range(len(boxes)):
        velo = np.array([*velocity[i], 0.0]) @ np.linalg.inv(e2g_r_mat).T @ np.linalg.inv(
            l2e_r_mat).T
        velocity[i] = velo[:2]
    names = np.array([NAME_MAPPING.get(b.name, b.name) for b in boxes])
    gt = dict(locs=locs, dims=dims, rots=rots, gt_names=names, gt_velocity=velocity,
              num_lidar_pts=np.array([a['num_lidar_pts'] for a in anns]),
              num_radar_pts=np.array([a['num_radar_pts'] for a in anns]),
              valid_flag=np.array([a['num_lidar_pts'] + a['num_radar_pts'] > 0 for a in anns],
                                  dtype=bool).reshape(-1))
    return info, gt


def _dump(obj, path):
    import pickle
    with open(path, 'wb') as f:
        pickle.dump(obj, f)


def write_bevformer_infos(root: str, out_dir: str, version: str = 'v1.0-mini',
                          prefix: str = 'nuscenes', max_sweeps: int = 10) -> Dict[str, str]:
    """The original BEVFormer's temporal infos of a dataroot; ``{'train': path, 'val': path}``."""
    from nuscenes import NuScenes
    from nuscenes.can_bus.can_bus_api import NuScenesCanBus
    nusc = NuScenes(version=version, dataroot=root, verbose=False)
    can_api = NuScenesCanBus(dataroot=root)
    train_scenes, val_scenes = _split_tokens(nusc, version)
    train, val = [], []
    frame_idx = 0
    for sample in nusc.sample:
        info, gt = _v1_info(nusc, sample, max_sweeps)
        info.update(prev=sample['prev'], next=sample['next'],
                    can_bus=_bevformer_can_bus(nusc, can_api, sample), frame_idx=frame_idx,
                    scene_token=sample['scene_token'])
        frame_idx = 0 if sample['next'] == '' else frame_idx + 1
        info['gt_boxes'] = np.concatenate([gt['locs'], gt['dims'], -gt['rots'] - np.pi / 2],
                                          axis=1)
        for key in ('gt_names', 'gt_velocity', 'num_lidar_pts', 'num_radar_pts', 'valid_flag'):
            info[key] = gt[key]
        (train if sample['scene_token'] in train_scenes else val).append(info)
    paths = {}
    for split, infos in (('train', train), ('val', val)):
        paths[split] = osp.join(out_dir, f'{prefix}_infos_temporal_{split}.pkl')
        _dump(dict(infos=infos, metadata=dict(version=version)), paths[split])
    return paths


def _matrix32(rotation, translation):
    mat = np.eye(4)
    mat[:3, :3] = Quaternion(rotation).rotation_matrix
    mat[:3, 3] = np.array(translation)
    return mat.astype(np.float32).tolist()


def _lidar2sensor32(rec):
    mat = np.eye(4)
    rot, trans = rec['sensor2lidar_rotation'], rec['sensor2lidar_translation']
    mat[:3, :3] = rot.T
    mat[:3, 3:4] = -1 * np.matmul(rot.T, trans.reshape(3, 1))
    return mat.astype(np.float32).tolist()


def write_mmdet3d_v2_infos(root: str, out_dir: str, version: str = 'v1.0-mini',
                           prefix: str = 'nuscenes', max_sweeps: int = 10) -> Dict[str, str]:
    """mmdet3d 1.x's nuScenes infos ("v2") of a dataroot; ``{'train': path, 'val': path}``."""
    from nuscenes import NuScenes
    nusc = NuScenes(version=version, dataroot=root, verbose=False)
    train_scenes, _ = _split_tokens(nusc, version)
    v1 = {'train': [], 'val': []}
    for sample in nusc.sample:  # mmdet3d 1.x's nuscenes_converter
        info, gt = _v1_info(nusc, sample, max_sweeps)
        info['num_features'] = 5
        info['gt_boxes'] = np.concatenate([gt['locs'], gt['dims'][:, [1, 0, 2]], gt['rots']],
                                          axis=1)
        for key in ('gt_names', 'gt_velocity', 'num_lidar_pts', 'num_radar_pts', 'valid_flag'):
            info[key] = gt[key]
        v1['train' if sample['scene_token'] in train_scenes else 'val'].append(info)
    paths = {}
    for split, infos in v1.items():  # update_infos_to_v2.update_nuscenes_infos
        data_list, ignored = [], set()
        for i, ori in enumerate(infos):
            new = dict(sample_idx=i, token=ori['token'],
                       ego2global=_matrix32(ori['ego2global_rotation'],
                                            ori['ego2global_translation']),
                       timestamp=ori['timestamp'] / 1e6,
                       lidar_points=dict(num_pts_feats=ori['num_features'],
                                         lidar_path=osp.basename(ori['lidar_path']),
                                         lidar2ego=_matrix32(ori['lidar2ego_rotation'],
                                                             ori['lidar2ego_translation'])),
                       images={}, instances=[])
            sweeps = []
            for sw in ori['sweeps']:
                sweeps.append(dict(
                    lidar_points=dict(lidar2ego=_matrix32(sw['sensor2ego_rotation'],
                                                          sw['sensor2ego_translation']),
                                      lidar2sensor=_lidar2sensor32(sw),
                                      lidar_path=sw['data_path']),
                    ego2global=_matrix32(sw['ego2global_rotation'], sw['ego2global_translation']),
                    timestamp=sw['timestamp'] / 1e6, sample_data_token=sw['sample_data_token']))
            if sweeps:
                new['lidar_sweeps'] = sweeps
            for cam, c in ori['cams'].items():
                new['images'][cam] = dict(
                    img_path=osp.basename(c['data_path']), cam2img=c['cam_intrinsic'].tolist(),
                    sample_data_token=c['sample_data_token'], timestamp=c['timestamp'] / 1e6,
                    cam2ego=_matrix32(c['sensor2ego_rotation'], c['sensor2ego_translation']),
                    lidar2cam=_lidar2sensor32(c))
            for j in range(len(ori['gt_boxes'])):
                name = ori['gt_names'][j]
                if name in MMDET3D_CLASSES:
                    label = MMDET3D_CLASSES.index(name)
                else:
                    ignored.add(name)
                    label = -1
                new['instances'].append(dict(
                    bbox_label=label, bbox_3d=ori['gt_boxes'][j].tolist(),
                    bbox_3d_isvalid=ori['valid_flag'][j], bbox_label_3d=label,
                    num_lidar_pts=ori['num_lidar_pts'][j], num_radar_pts=ori['num_radar_pts'][j],
                    velocity=ori['gt_velocity'][j].tolist()))
            # (2D boxes per camera; their content does not matter to the conversion)
            new['cam_instances'] = {cam: [] for cam in CAMERA_TYPES}
            data_list.append(new)
        categories = {k: i for i, k in enumerate(MMDET3D_CLASSES)}
        categories.update({name: -1 for name in ignored})
        paths[split] = osp.join(out_dir, f'{prefix}_infos_{split}.pkl')
        _dump(dict(metainfo=dict(categories=categories, dataset='nuscenes', version=version,
                                 info_version='1.1'),
                   data_list=data_list), paths[split])
    return paths
