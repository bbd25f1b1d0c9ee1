"""The multi-view temporal nuScenes dataset (info format: docs/data_format.md).

One item is the current key frame plus ``queue_length - 1`` earlier key frames of the same
scene. The pipeline runs on each frame separately; the dataset then stacks the frames, current
frame last, into ``inputs``: ``img`` (T, N_cam, 3, H, W) and the per-frame geometry
``lidar2img`` (T, N_cam, 4, 4), ``lidar2global`` (T, 4, 4), ``can_bus`` (T, 18), ``img_shape``
(T, 2) and ``prev_exists`` (T,), which ``BEVDataPreprocessor`` batches and validates. The one
:class:`Det3DDataSample` is the current frame's; its metainfo also carries ``prev_exists`` and
a ``history`` list (oldest first) naming the earlier frames (token, scene, index, time).

Frame order and scene boundaries come from the info file: ``data_list`` is sorted by
(scene, timestamp), so the frames of a scene are contiguous and a frame's predecessor in the
list is its previous key frame (or, with ``load_interval`` k, the key frame k steps back).
"""
import os.path as osp
import warnings
from typing import Any, Dict, List, Optional, Sequence

import mmengine
import numpy as np
import torch
from mmdet.registry import DATASETS, TRANSFORMS
from mmengine.dataset import BaseDataset

from ..constants import CAMERAS, CLASSES
from .validation import (check_boxes, check_intrinsics, check_pose, check_projection,
                         check_vector)

# What parse_data_info reads: key -> expected array shape (None: any scalar / string).
_FRAME_KEYS = {'token': None, 'scene_token': None, 'timestamp': None, 'prev': None,
               'next': None, 'frame_idx': None, 'lidar2ego': (4, 4), 'ego2global': (4, 4),
               'can_bus': (18, ), 'cams': None, 'instances': None}
_CAM_KEYS = {'img_path': None, 'width': None, 'height': None, 'cam2img': (3, 3),
             'lidar2cam': (4, 4), 'lidar2img': (4, 4)}
_INSTANCE_KEYS = {'bbox_3d': (7, ), 'velocity': (2, ), 'label': None, 'valid_flag': None}


class InfoFormatError(ValueError):
    """An info file entry misses a key or has a value of the wrong shape or an invalid value."""


@DATASETS.register_module()
class NuScenesBEVDataset(BaseDataset):
    """Multi-view, multi-frame nuScenes key frames for BEV detection.

    Args:
        ann_file (str): the info pickle (``tools/create_data.py``), relative to ``data_root``
            unless absolute.
        data_root (str): the nuScenes dataroot; image paths in the info are relative to it.
        pipeline (list[dict]): transforms applied to each frame (ending with
            ``PackBEVInputs``).
        queue_length (int): T, the number of frames per item (current one included).
        queue_sampling (str): how the T - 1 earlier frames are chosen:
            ``'random'`` (BEVFormer: shuffle ``range(idx - T, idx)``, keep T - 1 of them
            sorted) or ``'consecutive'`` (``idx - T + 1 .. idx - 1``). Indices before the
            first frame of the current scene are clamped to it (a frame is repeated rather
            than taken from another scene).
        metainfo (dict, optional): ``classes`` overrides the info file's classes: labels are
            remapped by name, boxes of other classes get label -1.
        cameras (sequence of str): camera channels, in the order of ``N_cam``.
        load_interval (int): keep every ``load_interval``-th frame of the info file.
        filter_empty_gt (bool): in training, skip frames without a valid box of a kept class
            (before the pipeline) and refetch when the pipeline leaves none (after range
            filtering).
        with_velocity (bool): boxes are (N, 9) with ``(vx, vy)``; (N, 7) without.
        test_mode (bool): evaluation mode (no filtering; with ``queue_length == 1`` the
            current frame's ``prev_exists`` tells whether the previous list entry is the
            previous frame of the same scene, for video-mode testing).
        data_prefix (dict): ``img`` prefix joined to every ``img_path`` (default the root).
        skip_invalid (bool): drop frames whose geometry or boxes fail the checks of
            ``datasets/validation.py`` (non-finite or degenerate poses, calibration, can_bus;
            boxes of zero size) with a warning listing them, instead of stopping with an
            error that names the file, sample and key; in training, also refetch another item
            when an image is missing, truncated or corrupt. :attr:`skipped` lists what was
            dropped. Default False.
        **kwargs: the rest of :class:`mmengine.dataset.BaseDataset` (``serialize_data``,
            ``lazy_init``, ``indices``, ``max_refetch``).
    """

    METAINFO = dict(classes=CLASSES, cameras=CAMERAS)

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 pipeline: Sequence[dict] = (),
                 queue_length: int = 1,
                 queue_sampling: str = 'random',
                 metainfo: Optional[dict] = None,
                 cameras: Sequence[str] = CAMERAS,
                 load_interval: int = 1,
                 filter_empty_gt: bool = True,
                 with_velocity: bool = True,
                 test_mode: bool = False,
                 data_prefix: Optional[dict] = None,
                 skip_invalid: bool = False,
                 **kwargs: Any) -> None:
        if queue_length < 1:
            raise ValueError(f'NuScenesBEVDataset: queue_length must be >= 1, got {queue_length}')
        if queue_sampling not in ('random', 'consecutive'):
            raise ValueError("NuScenesBEVDataset: queue_sampling must be 'random' or "
                             f"'consecutive', got {queue_sampling!r}")
        if load_interval < 1:
            raise ValueError(f'NuScenesBEVDataset: load_interval must be >= 1, got {load_interval}')
        self.queue_length = queue_length
        self.queue_sampling = queue_sampling
        self.cameras = tuple(cameras)
        self.load_interval = load_interval
        self.filter_empty_gt = filter_empty_gt
        self.with_velocity = with_velocity
        self.skip_invalid = skip_invalid
        #: (token or item, reason) of every frame dropped or refetched by ``skip_invalid``
        self.skipped: List[tuple] = []
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix if data_prefix is not None else dict(img=''),
            # Built from mmdet's registry so the transforms resolve without a default scope.
            pipeline=[TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline],
            test_mode=test_mode,
            **kwargs)

    # ------------------------------------------------------------------ loading / parsing
    def full_init(self) -> None:
        """Load the info file, index scenes and choose the frames that are items.

        All frames stay in ``data_list`` (history frames may be ones that are not items
        themselves); ``self._items`` maps an item index to its frame index.
        """
        if self._fully_initialized:
            return
        self.data_list = self.load_data_list()
        num = len(self.data_list)
        scene_ids = np.zeros(num, dtype=np.int64)
        for i in range(1, num):
            same = self.data_list[i]['scene_token'] == self.data_list[i - 1]['scene_token']
            scene_ids[i] = scene_ids[i - 1] + (0 if same else 1)
        # First frame index of each frame's scene.
        starts = np.zeros(num, dtype=np.int64)
        for i in range(1, num):
            starts[i] = starts[i - 1] if scene_ids[i] == scene_ids[i - 1] else i
        self._scene_start = starts
        self._items = self._select_items()
        if self._indices is not None:  # mmengine semantics: int n = first n (last -n if < 0)
            sel = self._indices
            if isinstance(sel, int):
                self._items = self._items[:sel] if sel >= 0 else self._items[sel:]
            else:
                self._items = self._items[np.asarray(sel, dtype=np.int64)]
        if self.serialize_data:
            self.data_bytes, self.data_address = self._serialize_data()
        self._fully_initialized = True

    def load_data_list(self) -> List[dict]:
        """Read the info pickle, check it, apply ``load_interval`` and parse every frame."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'NuScenesBEVDataset: info file not found: {self.ann_file}')
        try:
            infos = mmengine.load(self.ann_file)
        except Exception as err:  # truncated, empty, not a pickle, refused by the safe loader
            raise InfoFormatError(f'{self.ann_file}: cannot read the info file '
                                  f'({type(err).__name__}: {err})') from err
        if not isinstance(infos, dict) or 'data_list' not in infos or 'metainfo' not in infos:
            raise InfoFormatError(f'{self.ann_file}: expected a dict with keys metainfo and '
                                  f'data_list, got {type(infos).__name__}'
                                  + (f' with keys {sorted(infos)}' if isinstance(infos, dict)
                                     else ''))
        file_meta = infos['metainfo']
        self._info_classes = tuple(file_meta.get('classes', CLASSES))
        for key, value in file_meta.items():
            if key != 'classes':  # the dataset's classes (METAINFO / argument) win
                self._metainfo.setdefault(key, value)
        self._metainfo['cameras'] = list(self.cameras)  # the order of N_cam in every item
        self._label_map = self._build_label_map()
        raw = infos['data_list']
        if not isinstance(raw, list) or not raw:
            raise InfoFormatError(f'{self.ann_file}: data_list is empty (or not a list): no '
                                  f'frame to load')
        self._check_sorted(raw)
        data_list = []
        for index in range(0, len(raw), self.load_interval):
            frame = self._parse_frame(raw[index], index)
            if frame is not None:
                data_list.append(frame)
        if self.skipped:
            warnings.warn(f'NuScenesBEVDataset: skip_invalid dropped {len(self.skipped)} of '
                          f'{len(raw)} frames of {self.ann_file}: {self.skipped}')
        if not data_list:
            raise InfoFormatError(f'{self.ann_file}: every frame failed validation '
                                  f'({len(self.skipped)} dropped)')
        return data_list

    def _build_label_map(self) -> np.ndarray:
        """Info-file label -> dataset label (-1 when the class is not kept)."""
        classes = list(self._metainfo['classes'])
        return np.array([classes.index(n) if n in classes else -1 for n in self._info_classes],
                        dtype=np.int64)

    def _check_sorted(self, raw: List[dict]) -> None:
        seen = set()
        for i, info in enumerate(raw):
            for key in ('scene_token', 'timestamp', 'token'):
                if key not in info:
                    self._fail(i, info, key)
            if i and info['scene_token'] == raw[i - 1]['scene_token']:
                if info['timestamp'] <= raw[i - 1]['timestamp']:
                    raise InfoFormatError(
                        f'{self.ann_file}: data_list must be sorted by (scene, timestamp); '
                        f'sample {i} (token {info["token"]}) is not later than sample {i - 1}')
            elif info['scene_token'] in seen:
                raise InfoFormatError(
                    f'{self.ann_file}: the frames of scene {info["scene_token"]} are not '
                    f'contiguous (sample {i}, token {info["token"]})')
            seen.add(info['scene_token'])

    def _fail(self, index: int, info: dict, key: str, detail: str = 'is missing') -> None:
        token = info.get('token', '?') if isinstance(info, dict) else '?'
        raise InfoFormatError(f'{self.ann_file}: sample {index} (token {token}): key '
                              f'{key!r} {detail}')

    def _get(self, index: int, info: dict, container: dict, key: str, shape: Optional[tuple],
             where: str = '') -> Any:
        name = f'{where}{key}'
        if not isinstance(container, dict) or key not in container:
            self._fail(index, info, name)
        value = container[key]
        if shape is not None:
            value = np.asarray(value, dtype=np.float64)
            if value.shape != shape:
                self._fail(index, info, name, f'has shape {value.shape}, expected {shape}')
        return value

    def _parse_frame(self, info: dict, index: int) -> Optional[dict]:
        """One info entry -> the per-frame dict the pipeline reads.

        Args:
            info (dict): an entry of the info file's ``data_list``.
            index (int): its position in the info file (for error messages).

        Returns:
            dict: ``token, scene_token, scene_name, timestamp, frame_idx, prev, next,
            lidar2ego, ego2global, lidar2global (4, 4), can_bus (18,), cam_names (N_cam),
            img_paths (N_cam), cam_sizes (N_cam, 2) (H, W), lidar2img (N_cam, 4, 4),
            cam2img (N_cam, 3, 3), lidar2cam (N_cam, 4, 4), gt_bboxes_3d (M, 9|7) float32,
            gt_labels_3d (M,) int64, gt_valid_flag (M,) bool``; None when the frame fails
            validation and ``skip_invalid`` is set (otherwise an :class:`InfoFormatError`).
        """
        get = self._get
        out = {k: get(index, info, info, k, s) for k, s in _FRAME_KEYS.items()}
        cams = out.pop('cams')
        lidar2img, cam2img, lidar2cam, paths, sizes = [], [], [], [], []
        for cam in self.cameras:
            cinfo = get(index, info, cams, cam, None, 'cams.')
            c = {k: get(index, info, cinfo, k, s, f'cams.{cam}.') for k, s in _CAM_KEYS.items()}
            lidar2img.append(c['lidar2img'])
            cam2img.append(c['cam2img'])
            lidar2cam.append(c['lidar2cam'])
            paths.append(osp.join(self.data_prefix.get('img', ''), c['img_path']))
            sizes.append((int(c['height']), int(c['width'])))
        instances = out.pop('instances')
        boxes, vels, labels, valid = [], [], [], []
        for j, inst in enumerate(instances):
            vals = {k: get(index, info, inst, k, s, f'instances[{j}].')
                    for k, s in _INSTANCE_KEYS.items()}
            boxes.append(vals['bbox_3d'])
            vels.append(vals['velocity'])
            label = int(vals['label'])
            if label >= len(self._label_map):
                self._fail(index, info, f'instances[{j}].label',
                           f'is {label}, beyond the {len(self._label_map)} info classes')
            labels.append(self._label_map[label] if label >= 0 else -1)
            valid.append(bool(vals['valid_flag']))
        problems = self._frame_problems(out, cam2img, lidar2cam, lidar2img, boxes, vels)
        if problems:
            token = info.get('token', '?')
            if not self.skip_invalid:
                raise InfoFormatError(f'{self.ann_file}: sample {index} (token {token}): '
                                      + '; '.join(problems))
            self.skipped.append((token, '; '.join(problems)))
            return None
        box_dim = 9 if self.with_velocity else 7
        gt = np.zeros((len(boxes), box_dim), dtype=np.float32)
        if boxes:
            gt[:, :7] = np.stack(boxes)
            if self.with_velocity:
                gt[:, 7:9] = np.stack(vels)  # NaN = unknown: masked per element in the loss
        out.update(
            scene_name=info.get('scene_name', ''),
            lidar2global=out['ego2global'] @ out['lidar2ego'],
            cam_names=list(self.cameras),
            img_paths=paths,
            cam_sizes=np.array(sizes, dtype=np.int64),
            lidar2img=np.stack(lidar2img),
            cam2img=np.stack(cam2img),
            lidar2cam=np.stack(lidar2cam),
            gt_bboxes_3d=gt,
            gt_labels_3d=np.array(labels, dtype=np.int64),
            gt_valid_flag=np.array(valid, dtype=bool))
        return out

    def _frame_problems(self, out: dict, cam2img: list, lidar2cam: list, lidar2img: list,
                        boxes: list, vels: list) -> List[str]:
        """Every failed check of ``datasets/validation.py`` for one frame."""
        problems = check_pose('lidar2ego', out['lidar2ego']) + check_pose(
            'ego2global', out['ego2global']) + check_vector('can_bus', out['can_bus'])
        for cam, k, e, p in zip(self.cameras, cam2img, lidar2cam, lidar2img):
            problems += check_intrinsics(f'cams.{cam}.cam2img', k)
            problems += check_pose(f'cams.{cam}.lidar2cam', e)
            problems += check_projection(f'cams.{cam}.lidar2img', p)
        if boxes:
            problems += check_boxes(np.stack(boxes), np.stack(vels))
        return problems

    def _select_items(self) -> np.ndarray:
        """Frame indices that are items (all of them unless filtering empty frames)."""
        frames = np.arange(len(self.data_list))
        if self.test_mode or not self.filter_empty_gt:
            return frames
        keep = np.array([((f['gt_labels_3d'] >= 0) & f['gt_valid_flag']).any()
                         for f in self.data_list], dtype=bool)
        if not keep.any():
            raise InfoFormatError(
                f'{self.ann_file}: no frame has a valid box of the classes '
                f'{list(self._metainfo["classes"])} (filter_empty_gt=True would leave no '
                f'training item; check metainfo.classes or set filter_empty_gt=False)')
        return frames[keep]

    # ------------------------------------------------------------------ indexing
    def __len__(self) -> int:
        if not self._fully_initialized:
            self.full_init()
        return len(self._items)

    def _frame_info(self, frame: int) -> dict:
        """The parsed dict of frame ``frame`` (an index into the full frame list)."""
        return super().get_data_info(int(frame))

    def get_data_info(self, idx: int) -> dict:
        """The parsed dict of the current frame of item ``idx``."""
        if not self._fully_initialized:
            self.full_init()
        return self._frame_info(self._items[idx])

    def get_cat_ids(self, idx: int) -> List[int]:
        labels = self.get_data_info(idx)['gt_labels_3d']
        return sorted(set(int(x) for x in labels if x >= 0))

    def queue_frames(self, idx: int) -> List[int]:
        """Frame indices (oldest first, current last) making item ``idx``.

        Args:
            idx (int): item index.

        Returns:
            list[int]: ``queue_length`` frame indices, all in the current frame's scene,
            non-decreasing (repeats at the start of a scene).
        """
        cur = int(self._items[idx])
        t = self.queue_length
        if t == 1:
            return [cur]
        if self.queue_sampling == 'random':
            earlier = list(np.random.permutation(np.arange(cur - t, cur)))
            earlier = sorted(earlier[1:])
        else:
            earlier = list(range(cur - t + 1, cur))
        start = int(self._scene_start[cur])
        return [max(int(f), start) for f in earlier] + [cur]

    def prev_exists(self, frames: Sequence[int]) -> List[bool]:
        """``prev_exists`` of each queue frame (docs/data_format.md).

        Args:
            frames (list[int]): frame indices from :meth:`queue_frames`.

        Returns:
            list[bool]: False for the oldest frame and for a repeated frame; True when the
            predecessor in the queue is an earlier frame of the same scene. In test mode with
            one frame: whether the previous list entry is an earlier frame of the same scene.
        """
        if len(frames) == 1 and self.test_mode:
            return [bool(frames[0] > self._scene_start[frames[0]])]
        flags = [False]
        for prev, cur in zip(frames[:-1], frames[1:]):
            flags.append(bool(prev != cur and self._scene_start[prev] == self._scene_start[cur]))
        return flags

    # ------------------------------------------------------------------ items
    def prepare_data(self, idx: int) -> Optional[dict]:
        """Run the pipeline on each queue frame and combine them.

        Returns:
            dict | None: ``inputs``: ``img`` (T, N_cam, 3, H, W) float32 and the geometry
            tensors listed in the module docstring; ``data_samples``: the current frame's
            Det3DDataSample with ``prev_exists`` and ``history`` in its metainfo. None
            (refetch) when a frame's pipeline returns None, in training with
            ``filter_empty_gt`` when the current frame has no box left, and in training with
            ``skip_invalid`` when an image is missing, truncated or corrupt.
        """
        frames = self.queue_frames(idx)
        flags = self.prev_exists(frames)
        packed = []
        for frame, flag in zip(frames, flags):
            info = self._frame_info(frame)
            info['prev_exists'] = flag
            try:
                out = self.pipeline(info)
            except OSError as err:  # missing / truncated / corrupt image (named in err)
                if not self.skip_invalid or self.test_mode:
                    raise
                self.skipped.append((info['token'], str(err)))
                warnings.warn(f'NuScenesBEVDataset: skip_invalid: item {idx} refetched '
                              f'({len(self.skipped)} skipped so far): {err}')
                return None
            if out is None:
                return None
            packed.append(out)
        current = packed[-1]['data_samples']
        if (not self.test_mode and self.filter_empty_gt and 'gt_instances_3d' in current
                and len(current.gt_instances_3d) == 0):
            return None
        return stack_frames(packed, flags)


def stack_frames(packed: List[dict], prev_exists: Sequence[bool]) -> dict:
    """One item from the pipeline outputs of its frames (oldest first, current last).

    Args:
        packed (list[dict]): T outputs of ``PackBEVInputs`` (``inputs['img']`` (N_cam, 3, H, W)
            and a Det3DDataSample with the frame's metainfo).
        prev_exists (sequence of bool): T flags, see :meth:`NuScenesBEVDataset.prev_exists`.

    Returns:
        dict: ``inputs``: ``img`` (T, N_cam, 3, H, W) and the geometry ``lidar2img``
        (T, N_cam, 4, 4), ``lidar2global`` (T, 4, 4), ``can_bus`` (T, 18), ``img_shape``
        (T, 2), ``prev_exists`` (T,); ``data_samples``: the current frame's sample with
        ``prev_exists`` and ``history`` (the earlier frames' identity) in its metainfo.
    """
    metas = [p['data_samples'].metainfo for p in packed]
    imgs = [p['inputs']['img'] for p in packed]
    for meta, img in zip(metas, imgs):
        if img.shape != imgs[-1].shape:
            raise ValueError(
                f'NuScenesBEVDataset: frames of one item must have the same image shape after '
                f'the pipeline; frame {meta.get("token", "?")} has {tuple(img.shape)}, the '
                f'current frame {tuple(imgs[-1].shape)} (use a deterministic resize/crop size)')
    geometry = {}
    for key in ('lidar2img', 'lidar2global', 'can_bus', 'img_shape'):
        missing = [m.get('token', '?') for m in metas if key not in m]
        if missing:
            raise KeyError(f'NuScenesBEVDataset: frames {missing} have no {key!r} after the '
                           f'pipeline (PackBEVInputs meta_keys must keep it)')
        if key == 'img_shape':  # valid (H, W) before the preprocessor pads
            values = [np.asarray(m[key][:2], dtype=np.int64) for m in metas]
        else:
            values = [np.asarray(m[key], dtype=np.float64) for m in metas]
        geometry[key] = torch.from_numpy(np.stack(values))
    geometry['prev_exists'] = torch.tensor(list(prev_exists), dtype=torch.bool)
    history = [{k: m[k] for k in ('token', 'scene_token', 'frame_idx', 'timestamp') if k in m}
               for m in metas[:-1]]
    current = packed[-1]['data_samples']
    current.set_metainfo(dict(prev_exists=bool(prev_exists[-1]), history=history))
    return dict(inputs=dict(img=torch.stack(imgs), **geometry), data_samples=current)
