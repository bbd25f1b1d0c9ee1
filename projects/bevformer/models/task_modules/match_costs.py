"""Match costs for 3D Hungarian assignment."""
from typing import Optional

import torch
from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData
from torch import Tensor


@TASK_UTILS.register_module()
class BBox3DL1Cost(BaseMatchCost):
    """L1 distance between 3D box regression codes.

    Only the first ``num_dims`` code dimensions enter the cost: with the default 8 these
    are centre, log sizes and (sin, cos) yaw, leaving out the velocity, which is often
    unknown (nan) in the ground truth and should not decide the matching.

    Args:
        num_dims (int): leading code dimensions to compare. Defaults to 8.
        weight (float): cost weight. Defaults to 1.0.
    """

    def __init__(self, num_dims: int = 8, weight: float = 1.0) -> None:
        super().__init__(weight=weight)
        self.num_dims = num_dims

    def __call__(self,
                 pred_instances: InstanceData,
                 gt_instances: InstanceData,
                 img_meta: Optional[dict] = None,
                 **kwargs) -> Tensor:
        """Compute the cost matrix.

        Args:
            pred_instances (InstanceData): ``bboxes`` (num_preds, code_size) codes.
            gt_instances (InstanceData): ``bboxes`` (num_gts, code_size) encoded targets.

        Returns:
            Tensor: (num_preds, num_gts) weighted cost.
        """
        pred, gt = pred_instances.bboxes, gt_instances.bboxes
        for name, t in (('pred_instances.bboxes', pred), ('gt_instances.bboxes', gt)):
            if t.dim() != 2 or t.shape[1] < self.num_dims:
                raise ValueError(f'BBox3DL1Cost: {name} must be (N, >={self.num_dims}), '
                                 f'got {tuple(t.shape)}')
        cost = torch.cdist(pred[:, :self.num_dims], gt[:, :self.num_dims], p=1)
        return cost * self.weight
