"""One-to-one Hungarian assignment of 3D box predictions to ground truth."""
from typing import List, Optional, Union

import torch
from mmdet.models.task_modules.assigners import AssignResult, BaseAssigner
from mmdet.registry import TASK_UTILS
from mmdet.utils import ConfigType
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment

# Stand-in for non-finite entries of the cost matrix, which scipy rejects; large enough
# that such pairs are only chosen when nothing else is possible.
_INVALID_COST = 1e8


@TASK_UTILS.register_module()
class HungarianAssigner3D(BaseAssigner):
    """Assign each ground-truth box to exactly one query by minimising a summed cost.

    The cost is the sum of the configured match costs (BEVFormer: ``FocalLossCost``
    weight 2.0 + ``BBox3DL1Cost`` weight 0.25). Queries left unmatched are background.

    Args:
        match_costs (list[dict] | dict): match-cost configs, built from ``TASK_UTILS``.
    """

    def __init__(self, match_costs: Union[List[ConfigType], ConfigType]) -> None:
        if isinstance(match_costs, dict):
            match_costs = [match_costs]
        if len(match_costs) == 0:
            raise ValueError('HungarianAssigner3D: match_costs must not be empty')
        self.match_costs = [TASK_UTILS.build(cfg) for cfg in match_costs]

    def assign(self,
               pred_instances: InstanceData,
               gt_instances: InstanceData,
               img_meta: Optional[dict] = None,
               **kwargs) -> AssignResult:
        """Assign ground truth to the predictions of one sample.

        Args:
            pred_instances (InstanceData): ``scores`` (num_preds, num_classes) logits and
                ``bboxes`` (num_preds, code_size) regression codes.
            gt_instances (InstanceData): ``labels`` (num_gts,) and ``bboxes``
                (num_gts, code_size) encoded ground truth.

        Returns:
            AssignResult: ``gt_inds`` (num_preds,) with 0 = background and i + 1 = the
            i-th ground truth; ``labels`` (num_preds,) with -1 for background.
        """
        num_gts, num_preds = len(gt_instances), len(pred_instances)
        device = gt_instances.labels.device
        gt_inds = torch.zeros(num_preds, dtype=torch.long, device=device)
        labels = torch.full((num_preds,), -1, dtype=torch.long, device=device)
        if num_gts == 0 or num_preds == 0:
            return AssignResult(num_gts, gt_inds, None, labels=labels)

        cost = sum(c(pred_instances=pred_instances, gt_instances=gt_instances,
                     img_meta=img_meta) for c in self.match_costs)
        cost = torch.nan_to_num(cost.detach().float(), nan=_INVALID_COST,
                                posinf=_INVALID_COST, neginf=-_INVALID_COST).cpu()
        pred_idx, gt_idx = linear_sum_assignment(cost.numpy())
        pred_idx = torch.from_numpy(pred_idx).to(device)
        gt_idx = torch.from_numpy(gt_idx).to(device)
        gt_inds[pred_idx] = gt_idx + 1
        labels[pred_idx] = gt_instances.labels[gt_idx]
        return AssignResult(num_gts, gt_inds, None, labels=labels)
