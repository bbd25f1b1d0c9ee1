"""A detection data sample with 3D ground truth and 3D predictions.

mmdet 3.x has no 3D data sample (that lives in mmdet3d, which we do not depend on), so
this extends :class:`mmdet.structures.DetDataSample` with two typed fields:

- ``gt_instances_3d`` (InstanceData): ``bboxes_3d`` (N, 9) float Tensor in the LiDAR frame,
  ``(x, y, z, l, w, h, yaw, vx, vy)`` with z at the box bottom (see docs/data_format.md),
  ``labels_3d`` (N,) long Tensor.
- ``pred_instances_3d`` (InstanceData): ``bboxes_3d`` (M, 9), ``scores_3d`` (M,),
  ``labels_3d`` (M,), same convention.
"""
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData


class Det3DDataSample(DetDataSample):
    """DetDataSample plus ``gt_instances_3d`` and ``pred_instances_3d``."""

    @property
    def gt_instances_3d(self) -> InstanceData:
        return self._gt_instances_3d

    @gt_instances_3d.setter
    def gt_instances_3d(self, value: InstanceData) -> None:
        self.set_field(value, '_gt_instances_3d', dtype=InstanceData)

    @gt_instances_3d.deleter
    def gt_instances_3d(self) -> None:
        del self._gt_instances_3d

    @property
    def pred_instances_3d(self) -> InstanceData:
        return self._pred_instances_3d

    @pred_instances_3d.setter
    def pred_instances_3d(self, value: InstanceData) -> None:
        self.set_field(value, '_pred_instances_3d', dtype=InstanceData)

    @pred_instances_3d.deleter
    def pred_instances_3d(self) -> None:
        del self._pred_instances_3d
