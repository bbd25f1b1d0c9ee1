"""Pack one frame's results into ``inputs`` and a :class:`Det3DDataSample`."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmengine.structures import InstanceData

from ...structures import Det3DDataSample

DEFAULT_META_KEYS = (
    'token', 'scene_token', 'scene_name', 'frame_idx', 'timestamp', 'sample_idx', 'prev_exists',
    'lidar2img', 'cam2img', 'lidar2cam', 'img_shape', 'ori_shape', 'pad_shape', 'scale_factor',
    'lidar2ego', 'ego2global', 'lidar2global', 'can_bus', 'img_paths', 'cam_names')
DEFAULT_DATA_KEYS = ('gt_bev_seg', )


@TRANSFORMS.register_module()
class PackBEVInputs(BaseTransform):
    """Images to a (N_cam, 3, H, W) float32 Tensor, GT and metainfo to a Det3DDataSample.

    Required keys: ``img`` (N_cam, H, W, 3). Optional: ``gt_bboxes_3d`` (M, 9|7),
    ``gt_labels_3d`` (M,) (then ``gt_instances_3d`` is set) and every key of ``meta_keys``
    that is present (matrices are kept as float64 numpy; see docs/data_format.md).

    Returns:
        dict: ``inputs={'img': Tensor (N_cam, 3, H, W) float32}``, ``data_samples``.

    Args:
        meta_keys (sequence of str): keys copied into the data sample's metainfo.
        data_keys (sequence of str): keys that, when present, become data fields of the
            sample (numpy arrays as Tensors), e.g. ``gt_bev_seg`` (num_classes, H, W) from
            ``LoadBEVSegLabels``.
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS,
                 data_keys: Sequence[str] = DEFAULT_DATA_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)
        self.data_keys = tuple(data_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim != 4 or img.shape[-1] != 3:
            raise ValueError(f'PackBEVInputs: img must be (N_cam, H, W, 3), got {img.shape}')
        img = torch.from_numpy(np.ascontiguousarray(img.transpose(0, 3, 1, 2))).float()
        sample = Det3DDataSample()
        if 'gt_bboxes_3d' in results:
            boxes = np.asarray(results['gt_bboxes_3d'], dtype=np.float32)
            if boxes.ndim != 2 or boxes.shape[1] not in (7, 9):
                raise ValueError(f'PackBEVInputs: gt_bboxes_3d must be (M, 7|9), got '
                                 f'{boxes.shape} (frame {results.get("token", "?")})')
            # Unknown velocities (columns 7, 8) may be NaN: the loss masks them per element.
            if not np.isfinite(boxes[:, :7]).all() or np.isinf(boxes).any():
                raise ValueError(f'PackBEVInputs: non-finite centre, size or yaw (or an '
                                 f'infinite velocity) in gt_bboxes_3d of frame '
                                 f'{results.get("token", "?")}')
            sample.gt_instances_3d = InstanceData(
                bboxes_3d=torch.from_numpy(boxes),
                labels_3d=torch.as_tensor(np.asarray(results['gt_labels_3d']), dtype=torch.long))
        for key in self.data_keys:
            if key in results:
                value = results[key]
                sample.set_field(torch.from_numpy(np.ascontiguousarray(value))
                                 if isinstance(value, np.ndarray) else value, key)
        meta = {}
        for key in self.meta_keys:
            if key in results:
                value = results[key]
                if key in ('lidar2img', 'cam2img', 'lidar2cam', 'lidar2ego', 'ego2global',
                           'lidar2global', 'can_bus'):
                    value = np.asarray(value, dtype=np.float64)
                meta[key] = value
        sample.set_metainfo(meta)
        return dict(inputs=dict(img=img), data_samples=sample)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(meta_keys={self.meta_keys}, '
                f'data_keys={self.data_keys})')
