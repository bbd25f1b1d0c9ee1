"""Filter the 3D ground truth of a frame before packing."""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from ...geometry.boxes import limit_angle


@TRANSFORMS.register_module()
class FilterBEVInstances(BaseTransform):
    """Keep boxes with a kept class, ``valid_flag`` and a BEV centre inside the range.

    Also wraps yaw into [-pi, pi). Unknown (NaN) velocities stay NaN: the detection loss masks
    them per element (``nan_velocity_to_zero=True`` turns them into 0 m/s targets instead).

    Required keys: ``gt_bboxes_3d`` (M, 9|7) float32 ``(x, y, z, l, w, h, yaw[, vx, vy])``,
    ``gt_labels_3d`` (M,) int64 (-1 = not a kept class). Optional ``gt_valid_flag`` (M,) bool.
    Modified: the three of them.

    Args:
        point_cloud_range (sequence of 6 float, optional): ``(x_min, y_min, z_min, x_max,
            y_max, z_max)``; a box is kept when ``x_min < x < x_max`` and
            ``y_min < y < y_max`` (its BEV centre; z is not checked). None: no range filter.
        use_valid_flag (bool): drop boxes whose ``valid_flag`` is False (no LiDAR or radar
            point inside, as the nuScenes evaluation does).
        nan_velocity_to_zero (bool): replace unknown velocities by 0 (mmdet3d's datasets do
            this). Default False.
    """

    def __init__(self, point_cloud_range: Optional[Sequence[float]] = None,
                 use_valid_flag: bool = True, nan_velocity_to_zero: bool = False) -> None:
        if point_cloud_range is not None and len(point_cloud_range) != 6:
            raise ValueError(f'FilterBEVInstances: point_cloud_range needs 6 values, got '
                             f'{point_cloud_range}')
        self.pc_range = (None if point_cloud_range is None else
                         np.array(point_cloud_range, dtype=np.float32))
        self.use_valid_flag = use_valid_flag
        self.nan_velocity_to_zero = nan_velocity_to_zero

    def transform(self, results: dict) -> dict:
        boxes = np.asarray(results['gt_bboxes_3d'], dtype=np.float32)
        labels = np.asarray(results['gt_labels_3d'], dtype=np.int64)
        if boxes.ndim != 2 or boxes.shape[1] not in (7, 9) or len(labels) != len(boxes):
            raise ValueError(f'FilterBEVInstances: gt_bboxes_3d must be (M, 7|9) with M labels, '
                             f'got {boxes.shape} and {labels.shape}')
        keep = labels >= 0
        valid = results.get('gt_valid_flag')
        if self.use_valid_flag and valid is not None:
            keep &= np.asarray(valid, dtype=bool)
        if self.pc_range is not None:
            r = self.pc_range
            keep &= ((boxes[:, 0] > r[0]) & (boxes[:, 0] < r[3]) & (boxes[:, 1] > r[1])
                     & (boxes[:, 1] < r[4]))
        boxes = boxes[keep].copy()
        boxes[:, 6] = limit_angle(boxes[:, 6])
        if boxes.shape[1] == 9 and self.nan_velocity_to_zero:
            boxes[:, 7:9] = np.nan_to_num(boxes[:, 7:9], nan=0.0)
        results['gt_bboxes_3d'] = boxes
        results['gt_labels_3d'] = labels[keep]
        if valid is not None:
            results['gt_valid_flag'] = np.asarray(valid, dtype=bool)[keep]
        return results

    def __repr__(self) -> str:
        rng = None if self.pc_range is None else self.pc_range.tolist()
        return (f'{self.__class__.__name__}(point_cloud_range={rng}, '
                f'use_valid_flag={self.use_valid_flag}, '
                f'nan_velocity_to_zero={self.nan_velocity_to_zero})')
