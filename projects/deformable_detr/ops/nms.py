"""Soft-NMS for axis-aligned and rotated (BEV) boxes, and the input checks NMS shares.

The class-aware NMS / Soft-NMS that a 3D head's ``test_cfg`` configures
(``batched_nms_3d``) lives beside the 3D heads, in
``projects/bevformer/models/heads/bev_nms.py``, and builds on these.

Box formats:

- axis-aligned ``(N, 4)``: ``(x1, y1, x2, y2)``; handled by mmcv's ops
  (``mmcv.ops.nms``, ``mmcv.ops.soft_nms``, ``mmcv.ops.batched_nms``).
- rotated ``(N, 5)``: ``(cx, cy, w, h, yaw)``, yaw in radians. Hard NMS is
  ``mmcv.ops.nms_rotated`` (on CPU it ignores its ``labels`` argument, so class-aware
  callers use ``mmcv.ops.batched_nms``'s per-class offsets). Soft-NMS is our loop
  around ``mmcv.ops.box_iou_rotated`` (mmcv has no rotated Soft-NMS).

Rotated box convention. mmcv's rotated ops (``clockwise=True``, the default) place
the corners at ``c + R(angle) @ (+-w/2, +-h/2)`` with the standard rotation matrix
``R = [[cos, -sin], [sin, cos]]``: ``w`` runs along the box's own x axis and a
positive angle turns +x towards +y. mmcv calls that "clockwise" because it draws y
pointing down (images). In a y-up frame such as the LiDAR / BEV frame of
``docs/data_format.md`` (yaw about +z, counter-clockwise from +x) it is the same
formula, so our ``(cx, cy, w, h, yaw)`` is passed unchanged with
``clockwise=True``. For a 3D box ``(x, y, z, l, w, h, yaw)`` the BEV box is
``(x, y, l, w, yaw)``: ``l`` lies along the heading. ``tests`` pin this with a box
whose IoU changes if the sign of the angle is flipped.
"""
from typing import Optional, Tuple

import torch
from mmcv.ops import box_iou_rotated
from mmcv.ops import soft_nms as mmcv_soft_nms
from torch import Tensor

_METHODS = ('naive', 'linear', 'gaussian')


def check_nms_inputs(where: str, boxes: Tensor, scores: Tensor,
                     labels: Optional[Tensor] = None) -> None:
    """Raise a ValueError naming ``where`` unless boxes (N, 4 or 5), scores (N,) and the
    optional labels (N,) fit together."""
    if boxes.dim() != 2 or boxes.shape[1] not in (4, 5):
        raise ValueError(f'{where}: boxes must be (N, 4) x1y1x2y2 or (N, 5) (cx, cy, w, h, yaw), '
                         f'got shape {tuple(boxes.shape)}')
    if tuple(scores.shape) != (boxes.shape[0],):
        raise ValueError(f'{where}: scores must be ({boxes.shape[0]},) to match boxes '
                         f'{tuple(boxes.shape)}, got shape {tuple(scores.shape)}')
    if labels is not None and tuple(labels.shape) != (boxes.shape[0],):
        raise ValueError(f'{where}: labels must be ({boxes.shape[0]},) to match boxes '
                         f'{tuple(boxes.shape)}, got shape {tuple(labels.shape)}')


def empty_nms_result(boxes: Tensor) -> Tuple[Tensor, Tensor]:
    """``dets`` (0, C + 1) and ``keep`` (0,) long for boxes (0, C)."""
    return (boxes.new_zeros(0, boxes.shape[1] + 1),
            torch.zeros(0, dtype=torch.long, device=boxes.device))


def soft_nms(boxes: Tensor,
             scores: Tensor,
             iou_threshold: float = 0.3,
             sigma: float = 0.5,
             min_score: float = 1e-3,
             method: str = 'linear') -> Tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al. 2017) on axis-aligned or rotated boxes.

    Repeatedly takes the box of highest (decayed) score and decays the others by
    their IoU ``o`` with it: ``'linear'`` multiplies by ``1 - o`` where
    ``o >= iou_threshold``, ``'gaussian'`` by ``exp(-o**2 / sigma)``, ``'naive'``
    drops them where ``o >= iou_threshold`` (hard NMS). Boxes whose score falls
    below ``min_score`` are discarded. Same rules as ``mmcv.ops.soft_nms``.

    Args:
        boxes (Tensor): (N, 4) ``(x1, y1, x2, y2)`` or (N, 5) ``(cx, cy, w, h, yaw)``.
        scores (Tensor): (N,).

    Returns:
        tuple: ``dets`` (K, 5 or 6), the kept boxes with their decayed score
        appended, sorted by that score (descending); ``keep`` (K,) long, their
        indices into ``boxes``.
    """
    check_nms_inputs('soft_nms', boxes, scores)
    if method not in _METHODS:
        raise ValueError(f'soft_nms: method must be one of {_METHODS}, got {method!r}')
    if boxes.shape[0] == 0:
        return empty_nms_result(boxes)
    if boxes.shape[1] == 4:
        # mmcv's CPU kernel reads float32
        dets, keep = mmcv_soft_nms(boxes.float(), scores.float(), iou_threshold, sigma,
                                   min_score, method)
        return dets.to(boxes.dtype), keep.long()
    return _rotated_soft_nms(boxes, scores, iou_threshold, sigma, min_score, method)


def _rotated_soft_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, sigma: float,
                      min_score: float, method: str) -> Tuple[Tensor, Tensor]:
    """Soft-NMS loop on (N, 5) rotated boxes; IoU from mmcv's ``box_iou_rotated``.

    One IoU row per kept box (not the N x N matrix), so memory stays O(N).
    """
    boxes_f = boxes.float().contiguous()
    current = scores.float().clone()
    remaining = torch.arange(boxes.shape[0], device=boxes.device)
    keep, kept_scores = [], []
    while remaining.numel() > 0:
        best = int(torch.argmax(current[remaining]))
        i = remaining[best]
        keep.append(i)
        kept_scores.append(current[i])
        remaining = torch.cat([remaining[:best], remaining[best + 1:]])
        if remaining.numel() == 0:
            break
        iou = box_iou_rotated(boxes_f[i].unsqueeze(0), boxes_f[remaining]).squeeze(0)
        if method == 'gaussian':
            decay = torch.exp(-iou * iou / sigma)
        elif method == 'linear':
            decay = torch.where(iou >= iou_threshold, 1 - iou, torch.ones_like(iou))
        else:  # naive
            decay = (iou < iou_threshold).to(iou.dtype)
        current[remaining] *= decay
        remaining = remaining[current[remaining] >= min_score]
    keep = torch.stack(keep)
    dets = torch.cat([boxes[keep], torch.stack(kept_scores).to(boxes.dtype)[:, None]], dim=1)
    return dets, keep
