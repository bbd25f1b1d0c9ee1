"""Info files of other projects -> ours (docs/data_format.md), box convention included.

Two nuScenes formats are read (``tools/dataset_converters/convert_infos.py`` is the CLI):

``'bevformer'``: the original BEVFormer's ``nuscenes_infos_temporal_{train,val,test}.pkl``
    (its ``tools/data_converter/nuscenes_converter.py``, mmdet3d v0.17):
    ``{'infos': [...], 'metadata': {'version'}}``, per sample ``token, prev, next,
    scene_token, frame_idx, timestamp, lidar_path, lidar2ego_* / ego2global_*`` (translation +
    (w, x, y, z) quaternion), ``can_bus`` (18,), ``cams[CAM]`` (``data_path,
    sample_data_token, timestamp, sensor2ego_*, ego2global_*`` at the camera time,
    ``sensor2lidar_rotation / _translation, cam_intrinsic``), ``sweeps``, and
    ``gt_boxes`` (N, 7) ``(x, y, z_centre, w, l, h, -yaw - pi / 2)``, ``gt_names``,
    ``gt_velocity``, ``num_lidar_pts``, ``num_radar_pts``, ``valid_flag``.
``'mmdet3d-v2'``: mmdet3d 1.x infos (``tools/create_data.py nuscenes``, i.e. its converter
    followed by ``update_infos_to_v2.py``): ``{'metainfo': {'categories', 'version', ...},
    'data_list': [...]}``, per sample ``token, timestamp`` (seconds), ``ego2global``,
    ``lidar_points{lidar_path (file name), lidar2ego}``, ``images[CAM]{img_path (file name),
    cam2img, cam2ego, lidar2cam, sample_data_token, timestamp}`` (matrices as float32 lists),
    ``instances[{bbox_3d (x, y, z_centre, l, w, h, yaw), bbox_label_3d, velocity,
    num_lidar_pts, num_radar_pts, bbox_3d_isvalid}]``.

What each format lacks comes from the dataroot's devkit tables (``<data_root>/<version>/``):

- both: the camera images' ``width`` / ``height``, the annotations' ``instance_token`` and
  ``attribute``, the ``scene_name``, and the exact box yaw: both projects store pyquaternion's
  yaw of the box in the LiDAR frame, ours is the heading of its x axis there; they differ at
  second order in the box's tilt relative to the LiDAR (< 1e-6 rad on the real key frame of
  tests/data, 2e-4 on our synthetic dataroot), and the file's yaw is checked against the
  annotation's rotation before ours is taken from it. Without the tables (``'bevformer'``
  only) the scene token stands for the name, sizes are read from the image files under
  ``data_root`` (1600 x 900, the nuScenes cameras, when they cannot be read), tokens /
  attributes are ``''`` and the yaw is the file's.
- ``'mmdet3d-v2'`` has no scene, ``prev`` / ``next`` or CAN bus and stores its matrices in
  float32, so it needs the tables: the sample's links and the float64 poses come from them,
  after checking that the file's values agree (to float32 precision) -- a file made from a
  different dataroot is refused, naming the sample and key. ``can_bus`` is read from the CAN bus
  expansion as ``tools/create_data.py`` reads it (``<can_bus_root>/can_bus``, default the
  dataroot; zeros when absent).

The original BEVFormer's ``can_bus`` holds the CAN pose in [0:7] (its dataset overwrote it with
the ego pose on loading) and the accel / rotation rate / velocity of the first CAN message
*after* the key frame (its loop reads the loop variable, not the message it kept) in [7:16];
we keep those CAN values and set [0:7] and the yaw [16:18] from the ego pose as our dataset
expects. With ``can_bus_root`` the CAN values are read anew as ours (the message at or before
the key frame), so the result equals ``tools/create_data.py``'s.

Everything else is taken from the file and put in our conventions: boxes with
:func:`~projects.bevformer.geometry.boxes.boxes_from_mmdet3d_infos`, labels re-indexed to our
class order (the two projects order the ten classes differently), paths relative to the
dataroot, timestamps in microseconds, ``lidar2img`` composed from ``cam2img`` and ``lidar2cam``,
``frame_idx`` recounted per scene, samples sorted by (scene, timestamp). Pickles are read with
the restricted unpickler (``projects/common/safe_pickle.py``): nothing in them runs.
"""
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from projects.bevformer.constants import CAMERAS, CLASSES
from projects.bevformer.geometry.boxes import (boxes_from_mmdet3d_infos, limit_angle,
                                               mmdet3d_info_yaw, pose_matrix,
                                               quaternion_to_matrix)
from projects.bevformer.geometry.camera import compose_lidar2img
from projects.bevformer.geometry.ego_motion import can_bus_vector
from tools.dataset_converters.nuscenes_converter import INFO_VERSION, CanBusReader, info_file

FORMATS = ('bevformer', 'mmdet3d-v2')
#: (height, width) of the nuScenes cameras, used when neither the tables nor the image say.
NUSCENES_IMAGE_SIZE = (900, 1600)
#: the 10 detection classes of mmdet3d (both v0.17 and 1.x), in its label order
MMDET3D_CLASSES = ('car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle',
                   'motorcycle', 'pedestrian', 'traffic_cone', 'barrier')
#: mmdet3d 1.x writes matrices as float32: what may separate them from the tables' float64
FLOAT32_RTOL = 1e-6
#: how far a file's box yaw may be from the one its annotation gives (rad)
YAW_TOL = 1e-5


class ForeignInfoError(ValueError):
    """A foreign info file is not what its format says, or does not fit the dataroot."""


def load_pickle(path: str):
    """Read a pickle with the restricted unpickler (plain data only; nothing runs)."""
    from projects.common.safe_pickle import safe_pickle_load
    return safe_pickle_load(path)


def detect_format(data) -> str:
    """``'bevformer'``, ``'mmdet3d-v2'`` or ``'ours'`` from the top-level layout."""
    if isinstance(data, dict) and 'infos' in data and 'metadata' in data:
        return 'bevformer'
    if isinstance(data, dict) and 'data_list' in data and 'metainfo' in data:
        first = data['data_list'][0] if data['data_list'] else {}
        if 'lidar_points' in first or 'images' in first or 'categories' in data['metainfo']:
            return 'mmdet3d-v2'
        if 'cams' in first or data['metainfo'].get('info_version') == INFO_VERSION:
            return 'ours'
    keys = sorted(data) if isinstance(data, dict) else type(data).__name__
    raise ForeignInfoError(f'not a known info layout (top-level keys {keys}); expected '
                           f"{{'infos', 'metadata'}} (bevformer) or {{'metainfo', 'data_list'}} "
                           f'(mmdet3d-v2)')


def relative_data_path(path: str, data_root: Optional[str] = None) -> str:
    """A path as the original converters wrote it (``<dataroot>/samples/CAM/x.jpg``, absolute or
    relative to where they ran) -> relative to the dataroot (``samples/CAM/x.jpg``).

    The part from the last ``samples`` / ``sweeps`` component on is kept (the nuScenes layout);
    otherwise the path must lie under ``data_root``.
    """
    parts = str(path).replace('\\', '/').split('/')
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ('samples', 'sweeps') and i < len(parts) - 1:
            return '/'.join(parts[i:])
    if data_root is not None:
        rel = osp.relpath(osp.abspath(path), osp.abspath(data_root))
        if not rel.startswith('..'):
            return rel.replace('\\', '/')
    raise ForeignInfoError(f'cannot make {path} relative to the dataroot: no samples/ or sweeps/ '
                           f'in it' + (f' and not under {data_root}' if data_root else ''))


class _Tables:
    """The devkit tables of a dataroot (what the foreign formats lack)."""

    def __init__(self, data_root: str, version: str) -> None:
        from nuscenes import NuScenes
        self.nusc = NuScenes(version=version, dataroot=data_root, verbose=False)

    def sample(self, token: str, where: str) -> dict:
        try:
            return self.nusc.get('sample', token)
        except KeyError:
            raise ForeignInfoError(f'{where}: sample token {token} is not in the dataroot\'s '
                                   f'tables ({self.nusc.dataroot}/{self.nusc.version})') from None

    def scene_name(self, scene_token: str) -> str:
        return self.nusc.get('scene', scene_token)['name']

    def sample_data(self, token: str) -> dict:
        return self.nusc.get('sample_data', token)

    def poses(self, sd: dict) -> Tuple[np.ndarray, np.ndarray]:
        """(sensor2ego, ego2global) (4, 4) float64 of a sample_data record."""
        cs = self.nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
        pose = self.nusc.get('ego_pose', sd['ego_pose_token'])
        return (pose_matrix(cs['translation'], cs['rotation']),
                pose_matrix(pose['translation'], pose['rotation']))

    def annotations(self, sample: dict) -> List[dict]:
        """``instance_token``, ``attribute``, ``category`` and ``detection_name`` per annotation,
        in ``sample['anns']`` order (the order both converters write the boxes in)."""
        from nuscenes.eval.detection.utils import category_to_detection_name
        out = []
        for token in sample['anns']:
            ann = self.nusc.get('sample_annotation', token)
            attrs = ann['attribute_tokens']
            out.append(dict(
                instance_token=ann['instance_token'],
                attribute=self.nusc.get('attribute', attrs[0])['name'] if attrs else '',
                category=ann['category_name'], rotation=ann['rotation'],
                detection_name=category_to_detection_name(ann['category_name'])))
        return out


def exact_yaw(boxes: np.ndarray, anns: List[dict], lidar2global: np.ndarray,
              where: str) -> np.ndarray:
    """Our yaw from the annotations' rotations, once the file's yaw is checked against them.

    Both foreign formats store pyquaternion's yaw of the box in the LiDAR frame, ours is the
    heading of its x axis there (``geometry/boxes.py``, :func:`mmdet3d_info_yaw`); they differ
    at second order in the box's tilt, which the file does not keep but the tables do.

    Args:
        boxes (ndarray): (N, >=7) the file's boxes in our convention (yaw as stored).
        anns (list[dict]): the N annotations (``rotation``: global (w, x, y, z)).
        lidar2global (ndarray): (4, 4).
        where (str): the sample, for messages.

    Returns:
        ndarray: (N,) our yaw.
    """
    if not len(anns):
        return np.zeros(0)
    box_rot = lidar2global[:3, :3].T[None] @ quaternion_to_matrix(
        np.array([a['rotation'] for a in anns]))
    diff = np.abs(limit_angle(boxes[:, 6] - mmdet3d_info_yaw(box_rot)))
    if diff.max() > YAW_TOL:
        i = int(diff.argmax())
        raise ForeignInfoError(f'{where}: box {i} has yaw {boxes[i, 6]:.6f} (our convention), '
                               f'its annotation {mmdet3d_info_yaw(box_rot[i]):.6f}: is the file '
                               f'made from this dataroot?')
    return np.arctan2(box_rot[:, 1, 0], box_rot[:, 0, 0])


def _open_tables(data_root: Optional[str], version: str, required: bool,
                 why: str = '') -> Optional[_Tables]:
    if data_root is not None and osp.isdir(osp.join(data_root, version)):
        return _Tables(data_root, version)
    where = osp.join(data_root, version) if data_root is not None else f'<data_root>/{version}'
    if required:
        raise FileNotFoundError(f'no nuScenes tables at {where}: {why}')
    warnings.warn(f'no nuScenes tables at {where}: scene names are the scene tokens, instance '
                  f'tokens and attributes are empty, image sizes come from the image files')
    return None


def _image_size(data_root: Optional[str], rel_path: str) -> Tuple[int, int]:
    """(height, width) read from the image header, else the nuScenes camera size."""
    if data_root is not None:
        path = osp.join(data_root, rel_path)
        if osp.isfile(path):
            try:
                from PIL import Image
                with Image.open(path) as img:
                    return int(img.height), int(img.width)
            except OSError:
                pass
    return NUSCENES_IMAGE_SIZE


def _check_close(where: str, key: str, file_value, ours: np.ndarray) -> None:
    """The file's (float32) value must equal the tables' float64 one to float32 precision."""
    file_value = np.asarray(file_value, dtype=np.float64)
    if file_value.shape != ours.shape:
        raise ForeignInfoError(f'{where}: {key} has shape {file_value.shape}, expected '
                               f'{ours.shape}')
    tol = FLOAT32_RTOL * max(1.0, float(np.abs(ours).max())) * 10
    err = float(np.abs(file_value - ours).max())
    if not err <= tol:
        raise ForeignInfoError(f'{where}: {key} differs from the dataroot\'s tables by {err:.3g} '
                               f'(tolerance {tol:.3g}): is the file made from this dataroot?')


def _pose_from_file(info: dict, prefix: str, where: str) -> np.ndarray:
    try:
        return pose_matrix(info[f'{prefix}_translation'], info[f'{prefix}_rotation'])
    except KeyError as err:
        raise ForeignInfoError(f'{where}: key {err.args[0]!r} is missing') from None


def _label(name: str) -> int:
    return CLASSES.index(name) if name in CLASSES else -1


def _ordered(info: dict) -> dict:
    """Our key order (that of tools/create_data.py), for readable dumps."""
    order = ('token', 'scene_token', 'scene_name', 'timestamp', 'prev', 'next', 'lidar_path',
             'lidar2ego', 'ego2global', 'can_bus', 'cams', 'instances')
    return {k: info[k] for k in order}


# ------------------------------------------------------------------------------ bevformer
def convert_bevformer_infos(data: dict, data_root: Optional[str] = None,
                            can_bus_root: Optional[str] = None, src: str = '<infos>') -> dict:
    """The original BEVFormer's temporal infos -> ours.

    Args:
        data (dict): the loaded ``{'infos': [...], 'metadata': {...}}``.
        data_root (str, optional): the nuScenes dataroot; its tables (``<version>/``) supply
            scene names, image sizes, instance tokens and attributes (see the module doc).
        can_bus_root (str, optional): read the CAN part of ``can_bus`` anew from
            ``<can_bus_root>/can_bus`` as ``tools/create_data.py`` does (needs the tables);
            default: keep the file's values.
        src (str): the file's name, for messages.

    Returns:
        dict: our info file (``metainfo``, ``data_list``).
    """
    if detect_format(data) != 'bevformer':
        raise ForeignInfoError(f'{src}: not an original-BEVFormer info file')
    version = data['metadata'].get('version')
    if version is None:
        raise ForeignInfoError(f"{src}: metadata has no 'version'")
    tables = _open_tables(data_root, version, required=can_bus_root is not None,
                          why='--can-bus-root needs the scene names')
    can_reader = CanBusReader(can_bus_root) if can_bus_root is not None else None
    out = []
    for index, raw in enumerate(data['infos']):
        token = raw.get('token', '?')
        where = f'{src}: sample {index} (token {token})'
        for key in ('token', 'prev', 'next', 'scene_token', 'timestamp', 'lidar_path', 'cams',
                    'can_bus'):
            if key not in raw:
                raise ForeignInfoError(f'{where}: key {key!r} is missing')
        lidar2ego = _pose_from_file(raw, 'lidar2ego', where)
        ego2global = _pose_from_file(raw, 'ego2global', where)
        lidar2global = ego2global @ lidar2ego
        sample = tables.sample(token, where) if tables is not None else None
        scene_name = tables.scene_name(raw['scene_token']) if tables is not None \
            else raw['scene_token']
        file_can = np.asarray(raw['can_bus'], dtype=np.float64).reshape(-1)
        if file_can.shape != (18, ):
            raise ForeignInfoError(f'{where}: can_bus has shape {file_can.shape}, expected (18,)')
        translation, rotation = raw['ego2global_translation'], raw['ego2global_rotation']
        if can_reader is not None:
            can_bus = can_reader.vector(scene_name, int(raw['timestamp']), translation, rotation)
        else:
            can_bus = can_bus_vector(translation, rotation, file_can[7:16])
        lidar_path = relative_data_path(raw['lidar_path'], data_root)
        if sample is not None:
            lidar_sd = tables.sample_data(sample['data']['LIDAR_TOP'])
            if lidar_sd['filename'] != lidar_path:
                raise ForeignInfoError(f'{where}: lidar_path {raw["lidar_path"]} is not the '
                                       f'sample\'s LIDAR_TOP file {lidar_sd["filename"]}')
        info = dict(token=token, scene_token=raw['scene_token'], scene_name=scene_name,
                    timestamp=int(raw['timestamp']), prev=raw['prev'], next=raw['next'],
                    lidar_path=lidar_path, lidar2ego=lidar2ego, ego2global=ego2global,
                    can_bus=can_bus, cams={})
        for cam in CAMERAS:
            if cam not in raw['cams']:
                raise ForeignInfoError(f'{where}: cams has no {cam} (has {sorted(raw["cams"])})')
            c = raw['cams'][cam]
            cwhere = f'{where}, cams.{cam}'
            cam2ego = _pose_from_file(c, 'sensor2ego', cwhere)
            cam_ego2global = _pose_from_file(c, 'ego2global', cwhere)
            cam2img = np.asarray(c['cam_intrinsic'], dtype=np.float64)
            if cam2img.shape != (3, 3):
                raise ForeignInfoError(f'{cwhere}: cam_intrinsic has shape {cam2img.shape}, '
                                       f'expected (3, 3)')
            lidar2cam = np.linalg.inv(cam2ego) @ np.linalg.inv(cam_ego2global) @ lidar2global
            # the file's own sensor2lidar (points_cam @ R.T + T) must say the same
            sensor2lidar = np.eye(4)
            sensor2lidar[:3, :3] = np.asarray(c['sensor2lidar_rotation'], dtype=np.float64)
            sensor2lidar[:3, 3] = np.asarray(c['sensor2lidar_translation'],
                                             dtype=np.float64).reshape(3)
            _check_close(cwhere, 'sensor2lidar (vs. the poses)', sensor2lidar,
                         np.linalg.inv(lidar2cam))
            img_path = relative_data_path(c['data_path'], data_root)
            if sample is not None:
                sd = tables.sample_data(c['sample_data_token'])
                if sd['filename'] != img_path:
                    raise ForeignInfoError(f'{cwhere}: data_path {c["data_path"]} is not its '
                                           f'sample_data\'s file {sd["filename"]}')
                height, width = int(sd['height']), int(sd['width'])
            else:
                height, width = _image_size(data_root, img_path)
            info['cams'][cam] = dict(
                img_path=img_path, sample_data_token=c['sample_data_token'],
                timestamp=int(c['timestamp']), width=width, height=height, cam2img=cam2img,
                cam2ego=cam2ego, ego2global=cam_ego2global, lidar2cam=lidar2cam,
                lidar2img=compose_lidar2img(cam2img, lidar2cam))
        info['instances'] = _bevformer_instances(raw, sample, tables, lidar2global, where)
        out.append(_ordered(info))
    return info_file(out, version)


def _bevformer_instances(raw: dict, sample: Optional[dict], tables: Optional[_Tables],
                         lidar2global: np.ndarray, where: str) -> List[dict]:
    if 'gt_boxes' not in raw:  # test split
        return []
    names = [str(x) for x in raw['gt_names']]
    gt_boxes = np.asarray(raw['gt_boxes'], dtype=np.float64)
    if gt_boxes.size == 0:
        gt_boxes = gt_boxes.reshape(0, 7)
    if gt_boxes.ndim != 2 or gt_boxes.shape[1] < 7:
        raise ForeignInfoError(f'{where}: gt_boxes has shape {gt_boxes.shape}, expected (N, 7)')
    boxes = boxes_from_mmdet3d_infos(gt_boxes[:, :7], 'v0.17')
    n = len(boxes)
    velocity = np.asarray(raw['gt_velocity'], dtype=np.float64).reshape(-1, 2)
    n_lidar, n_radar = np.asarray(raw['num_lidar_pts']), np.asarray(raw['num_radar_pts'])
    valid = np.asarray(raw['valid_flag'], dtype=bool)
    for key, value in (('gt_names', names), ('gt_velocity', velocity),
                       ('num_lidar_pts', n_lidar), ('num_radar_pts', n_radar),
                       ('valid_flag', valid)):
        if len(value) != n:
            raise ForeignInfoError(f'{where}: {key} has {len(value)} entries, gt_boxes {n}')
    anns = tables.annotations(sample) if tables is not None else None
    if anns is not None and len(anns) != n:
        raise ForeignInfoError(f'{where}: {n} gt_boxes but {len(anns)} annotations in the tables')
    if anns is not None:
        boxes[:, 6] = exact_yaw(boxes, anns, lidar2global, where)
    out = []
    for i in range(n):
        if anns is not None:
            expected = anns[i]['detection_name'] or anns[i]['category']
            if names[i] != expected:
                raise ForeignInfoError(f'{where}: gt_names[{i}] is {names[i]!r}, the tables\' '
                                       f'annotation {i} is {expected!r}')
        out.append(dict(
            bbox_3d=boxes[i].tolist(), velocity=velocity[i].tolist(), label=_label(names[i]),
            name=names[i], attribute=anns[i]['attribute'] if anns else '',
            instance_token=anns[i]['instance_token'] if anns else '',
            num_lidar_pts=int(n_lidar[i]), num_radar_pts=int(n_radar[i]),
            valid_flag=bool(valid[i])))
    return out


# ----------------------------------------------------------------------------- mmdet3d-v2
def _v2_classes(metainfo: dict, src: str) -> Dict[int, str]:
    """label -> class name of a v2 file (``categories`` {name: label}, or ``classes``)."""
    if 'categories' in metainfo:
        return {int(v): k for k, v in metainfo['categories'].items() if int(v) >= 0}
    if 'classes' in metainfo:
        return dict(enumerate(metainfo['classes']))
    warnings.warn(f'{src}: metainfo has neither categories nor classes; assuming mmdet3d\'s '
                  f'nuScenes class order {MMDET3D_CLASSES}')
    return dict(enumerate(MMDET3D_CLASSES))


def convert_mmdet3d_v2_infos(data: dict, data_root: str, can_bus_root: Optional[str] = None,
                             src: str = '<infos>') -> dict:
    """mmdet3d 1.x ("v2") nuScenes infos -> ours.

    Args:
        data (dict): the loaded ``{'metainfo': {...}, 'data_list': [...]}``.
        data_root (str): the nuScenes dataroot with its tables (``<version>/``): required, the
            format has no scene or ``prev`` / ``next`` links and float32 matrices.
        can_bus_root (str, optional): directory containing ``can_bus/`` (default ``data_root``).
        src (str): the file's name, for messages.

    Returns:
        dict: our info file (``metainfo``, ``data_list``).
    """
    if detect_format(data) != 'mmdet3d-v2':
        raise ForeignInfoError(f'{src}: not an mmdet3d v2 info file')
    meta = data['metainfo']
    version = meta.get('version')
    if version is None:
        raise ForeignInfoError(f"{src}: metainfo has no 'version'")
    if data_root is None:
        raise ValueError(f'{src}: mmdet3d v2 infos need --data-root (the nuScenes tables: the '
                         f'format has no scene / prev / next and stores float32 matrices)')
    tables = _open_tables(data_root, version, required=True,
                          why='mmdet3d v2 infos have no scene / prev / next links')
    can_reader = CanBusReader(data_root if can_bus_root is None else can_bus_root)
    classes = _v2_classes(meta, src)
    out = []
    for index, raw in enumerate(data['data_list']):
        token = raw.get('token', '?')
        where = f'{src}: sample {index} (token {token})'
        for key in ('token', 'timestamp', 'ego2global', 'lidar_points', 'images'):
            if key not in raw:
                raise ForeignInfoError(f'{where}: key {key!r} is missing')
        sample = tables.sample(token, where)
        if abs(float(raw['timestamp']) * 1e6 - sample['timestamp']) > 2:
            raise ForeignInfoError(f'{where}: timestamp {raw["timestamp"]} s is not the '
                                   f'sample\'s {sample["timestamp"]} us')
        lidar_sd = tables.sample_data(sample['data']['LIDAR_TOP'])
        lidar2ego, ego2global = tables.poses(lidar_sd)
        _check_close(where, 'ego2global', raw['ego2global'], ego2global)
        _check_close(where, 'lidar_points.lidar2ego', raw['lidar_points']['lidar2ego'], lidar2ego)
        if osp.basename(str(raw['lidar_points']['lidar_path'])) != \
                osp.basename(lidar_sd['filename']):
            raise ForeignInfoError(f'{where}: lidar_points.lidar_path '
                                   f'{raw["lidar_points"]["lidar_path"]} is not the sample\'s '
                                   f'LIDAR_TOP file {lidar_sd["filename"]}')
        lidar2global = ego2global @ lidar2ego
        scene_name = tables.scene_name(sample['scene_token'])
        pose = tables.nusc.get('ego_pose', lidar_sd['ego_pose_token'])
        info = dict(token=token, scene_token=sample['scene_token'], scene_name=scene_name,
                    timestamp=int(sample['timestamp']), prev=sample['prev'], next=sample['next'],
                    lidar_path=lidar_sd['filename'], lidar2ego=lidar2ego, ego2global=ego2global,
                    can_bus=can_reader.vector(scene_name, sample['timestamp'],
                                              pose['translation'], pose['rotation']),
                    cams={})
        for cam in CAMERAS:
            if cam not in raw['images']:
                raise ForeignInfoError(f'{where}: images has no {cam} '
                                       f'(has {sorted(raw["images"])})')
            c = raw['images'][cam]
            cwhere = f'{where}, images.{cam}'
            sd_token = c.get('sample_data_token', sample['data'][cam])
            if sd_token != sample['data'][cam]:
                raise ForeignInfoError(f'{cwhere}: sample_data_token {sd_token} is not the '
                                       f'sample\'s {cam} ({sample["data"][cam]})')
            sd = tables.sample_data(sd_token)
            if osp.basename(str(c['img_path'])) != osp.basename(sd['filename']):
                raise ForeignInfoError(f'{cwhere}: img_path {c["img_path"]} is not its '
                                       f'sample_data\'s file {sd["filename"]}')
            cam2ego, cam_ego2global = tables.poses(sd)
            lidar2cam = np.linalg.inv(cam2ego) @ np.linalg.inv(cam_ego2global) @ lidar2global
            _check_close(cwhere, 'cam2ego', c['cam2ego'], cam2ego)
            _check_close(cwhere, 'lidar2cam', c['lidar2cam'], lidar2cam)
            cam2img = np.asarray(c['cam2img'], dtype=np.float64)
            if cam2img.shape != (3, 3):
                raise ForeignInfoError(f'{cwhere}: cam2img has shape {cam2img.shape}, expected '
                                       f'(3, 3)')
            info['cams'][cam] = dict(
                img_path=sd['filename'], sample_data_token=sd_token,
                timestamp=int(sd['timestamp']), width=int(sd['width']),
                height=int(sd['height']), cam2img=cam2img, cam2ego=cam2ego,
                ego2global=cam_ego2global, lidar2cam=lidar2cam,
                lidar2img=compose_lidar2img(cam2img, lidar2cam))
        info['instances'] = _v2_instances(raw.get('instances', []), sample, tables, classes,
                                          lidar2global, where)
        out.append(_ordered(info))
    return info_file(out, version)


def _v2_instances(instances: Sequence[dict], sample: dict, tables: _Tables,
                  classes: Dict[int, str], lidar2global: np.ndarray,
                  where: str) -> List[dict]:
    if not instances:
        return []
    anns = tables.annotations(sample)
    if len(anns) != len(instances):
        raise ForeignInfoError(f'{where}: {len(instances)} instances but {len(anns)} annotations '
                               f'in the tables')
    boxes = boxes_from_mmdet3d_infos(
        np.array([np.asarray(inst['bbox_3d'], dtype=np.float64)[:7] for inst in instances]),
        'v1.x')
    boxes[:, 6] = exact_yaw(boxes, anns, lidar2global, where)
    out = []
    for i, (inst, ann) in enumerate(zip(instances, anns)):
        label = int(inst.get('bbox_label_3d', inst.get('bbox_label', -1)))
        name = classes.get(label) if label >= 0 else None
        if name is None and label >= 0:
            raise ForeignInfoError(f'{where}: instances[{i}].bbox_label_3d {label} is not in the '
                                   f'file\'s categories')
        if name is not None and name != ann['detection_name']:
            raise ForeignInfoError(f'{where}: instances[{i}] is a {name!r} in the file, a '
                                   f'{ann["detection_name"]!r} in the tables')
        name = name if name is not None else (ann['detection_name'] or ann['category'])
        n_lidar, n_radar = int(inst['num_lidar_pts']), int(inst['num_radar_pts'])
        out.append(dict(
            bbox_3d=boxes[i].tolist(),
            velocity=np.asarray(inst.get('velocity', [np.nan, np.nan]),
                                dtype=np.float64).reshape(2).tolist(),
            label=_label(name), name=name, attribute=ann['attribute'],
            instance_token=ann['instance_token'], num_lidar_pts=n_lidar,
            num_radar_pts=n_radar,
            valid_flag=bool(inst.get('bbox_3d_isvalid', n_lidar + n_radar > 0))))
    return out


# ----------------------------------------------------------------------------------- file
def convert_info_file(src: str, dst: Optional[str] = None, fmt: str = 'auto',
                      data_root: Optional[str] = None,
                      can_bus_root: Optional[str] = None) -> dict:
    """Read a foreign info pickle (safely), convert it, and write ours to ``dst``.

    Args:
        src (str): the foreign info file.
        dst (str, optional): where to write ours (``mmengine.dump``); not written when None.
        fmt (str): ``'bevformer'``, ``'mmdet3d-v2'`` or ``'auto'`` (from the layout).
        data_root (str, optional): the nuScenes dataroot (required for ``'mmdet3d-v2'``).
        can_bus_root (str, optional): see the converters.

    Returns:
        dict: our info file.
    """
    if fmt not in FORMATS + ('auto', ):
        raise ValueError(f'format must be one of {FORMATS + ("auto", )}, got {fmt!r}')
    data = load_pickle(src)
    found = detect_format(data)
    if found == 'ours':
        raise ForeignInfoError(f'{src} is already in our format (docs/data_format.md)')
    if fmt != 'auto' and found != fmt:
        raise ForeignInfoError(f'{src}: --format {fmt}, but the file is laid out as {found}')
    if found == 'bevformer':
        out = convert_bevformer_infos(data, data_root, can_bus_root, src=src)
    else:
        out = convert_mmdet3d_v2_infos(data, data_root, can_bus_root, src=src)
    if dst is not None:
        import mmengine
        if osp.abspath(dst) == osp.abspath(src):
            raise ValueError(f'refusing to overwrite the source {src}')
        mmengine.mkdir_or_exist(osp.dirname(osp.abspath(dst)))
        mmengine.dump(out, dst)
    return out


__all__ = ['FORMATS', 'ForeignInfoError', 'convert_bevformer_infos', 'convert_mmdet3d_v2_infos',
           'convert_info_file', 'detect_format', 'relative_data_path', 'load_pickle']
