"""Optional BEV NMS / Soft-NMS over decoded 3D boxes (the original head is NMS-free).

Boxes are suppressed by the rotated IoU of their bird's-eye-view footprints, handed to
:func:`batched_nms_3d` as ``(x, y, l, w, yaw)`` (first size along the heading, angle
counter-clockwise from +x; see ``geometry/box_coding.bev_rotated_boxes``). The rotated-box
convention and the per-box Soft-NMS are the 2D ops' (``projects.deformable_detr.ops.nms``).
"""
from typing import Dict, Tuple

import torch
from mmcv.ops import batched_nms as mmcv_batched_nms
from mmengine.structures import InstanceData
from torch import Tensor

from projects.bevformer.geometry.box_coding import bev_rotated_boxes
from projects.deformable_detr.ops.nms import check_nms_inputs, empty_nms_result, soft_nms

_CFG_KEYS = {'type', 'iou_threshold', 'method', 'sigma', 'min_score', 'max_per_img',
             'class_agnostic'}


def batched_nms_3d(boxes: Tensor, scores: Tensor, labels: Tensor,
                   nms_cfg: Dict) -> Tuple[Tensor, Tensor]:
    """Class-aware NMS / Soft-NMS as configured by a head's ``test_cfg``.

    Boxes of different labels never suppress each other (unless
    ``class_agnostic=True``).

    Args:
        boxes (Tensor): (N, 4) ``(x1, y1, x2, y2)`` or (N, 5) ``(cx, cy, w, h, yaw)``;
            for 3D boxes pass the BEV box ``(x, y, l, w, yaw)``.
        scores (Tensor): (N,).
        labels (Tensor): (N,) long class indices.
        nms_cfg (dict): ``type`` ``'nms'`` (hard, mmcv's ``nms`` / ``nms_rotated``)
            or ``'soft_nms'``; ``iou_threshold``; for Soft-NMS ``method``
            (``'linear'``, ``'gaussian'``, ``'naive'``), ``sigma``, ``min_score``;
            optional ``max_per_img`` (keep the best that many, <= 0 keeps all) and
            ``class_agnostic`` (default False).

    Returns:
        tuple: ``dets`` (K, 5 or 6) kept boxes with their (decayed) score appended,
        sorted by score (descending); ``keep`` (K,) long indices into ``boxes``.
    """
    check_nms_inputs('batched_nms_3d', boxes, scores, labels)
    unknown = set(nms_cfg) - _CFG_KEYS
    if unknown:
        raise KeyError(f'batched_nms_3d: unknown nms_cfg keys {sorted(unknown)}; '
                       f'expected a subset of {sorted(_CFG_KEYS)}')
    cfg = dict(nms_cfg)
    nms_type = cfg.pop('type', 'nms')
    if nms_type not in ('nms', 'soft_nms'):
        raise ValueError(f"batched_nms_3d: nms_cfg['type'] must be 'nms' or 'soft_nms', "
                         f'got {nms_type!r}')
    if 'iou_threshold' not in cfg:
        raise KeyError("batched_nms_3d: nms_cfg needs 'iou_threshold'")
    max_per_img = cfg.pop('max_per_img', -1)
    class_agnostic = cfg.pop('class_agnostic', False)
    if nms_type == 'nms':
        extra = set(cfg) - {'iou_threshold'}
        if extra:
            raise KeyError(f"batched_nms_3d: keys {sorted(extra)} only apply to type='soft_nms'")
    if boxes.shape[0] == 0:
        return empty_nms_result(boxes)
    if class_agnostic:
        labels = torch.zeros_like(labels)

    if boxes.shape[1] == 4:
        # mmcv offsets each class far apart so one (Soft-)NMS call stays class-aware
        dets, keep = mmcv_batched_nms(boxes.float(), scores.float(), labels,
                                      dict(type=nms_type, **cfg))
        dets = dets.to(boxes.dtype)
    elif nms_type == 'nms':
        # Not nms_rotated(labels=...): its CPU kernel silently ignores labels (mmcv 2.1).
        dets, keep = mmcv_batched_nms(boxes.float(), scores.float(), labels,
                                      dict(type='nms_rotated', **cfg))
        dets = dets.to(boxes.dtype)
    else:
        per_class = []
        for label in torch.unique(labels):
            idx = torch.nonzero(labels == label).squeeze(1)
            d, k = soft_nms(boxes[idx], scores[idx], **cfg)
            per_class.append((d, idx[k]))
        dets = torch.cat([d for d, _ in per_class])
        keep = torch.cat([k for _, k in per_class])
    order = torch.argsort(dets[:, -1], descending=True, stable=True)
    dets, keep = dets[order], keep[order].long()
    if max_per_img is not None and max_per_img > 0:
        dets, keep = dets[:max_per_img], keep[:max_per_img]
    return dets, keep


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
