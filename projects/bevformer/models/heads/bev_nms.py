"""Optional BEV NMS / Soft-NMS over decoded 3D boxes (the original head is NMS-free).

Boxes are suppressed by the rotated IoU of their bird's-eye-view footprints, handed to
``projects.deformable_detr.ops.batched_nms_3d`` as ``(x, y, l, w, yaw)`` (first size
along the heading, angle counter-clockwise from +x; see
``geometry/box_coding.bev_rotated_boxes``).
"""
from typing import Dict

from mmengine.structures import InstanceData

from projects.bevformer.geometry.box_coding import bev_rotated_boxes
from projects.deformable_detr.ops import batched_nms_3d


def bev_nms(results: InstanceData, nms_cfg: Dict) -> InstanceData:
    """Suppress overlapping boxes of one sample, class-aware unless configured otherwise.

    Args:
        results (InstanceData): ``bboxes_3d`` (M, 9), ``scores_3d`` (M,),
            ``labels_3d`` (M,).
        nms_cfg (dict): ``type`` ('nms' or 'soft_nms'), ``iou_threshold`` and the other
            keys of ``batched_nms_3d`` (``class_agnostic``, ``max_per_img``, Soft-NMS
            ``method`` / ``sigma`` / ``min_score``).

    Returns:
        InstanceData: the kept boxes sorted by score; with Soft-NMS ``scores_3d`` holds
        the decayed scores.
    """
    if len(results) == 0:
        return results
    dets, keep = batched_nms_3d(bev_rotated_boxes(results.bboxes_3d), results.scores_3d,
                                results.labels_3d, nms_cfg)
    kept = results[keep]
    kept.scores_3d = dets[:, -1].to(results.scores_3d.dtype)
    return kept
