"""NMS and Soft-NMS post-processing for axis-aligned and rotated (BEV) boxes.

Box formats:

- axis-aligned ``(N, 4)``: ``(x1, y1, x2, y2)``; handled by mmcv's ops
  (``mmcv.ops.nms``, ``mmcv.ops.soft_nms``, ``mmcv.ops.batched_nms``).
- rotated ``(N, 5)``: ``(cx, cy, w, h, yaw)``, yaw in radians. Hard NMS is
  ``mmcv.ops.nms_rotated``, made class-aware by ``mmcv.ops.batched_nms``'s per-class
  offsets (on CPU ``nms_rotated`` ignores its ``labels`` argument). Soft-NMS is our
  loop around ``mmcv.ops.box_iou_rotated`` (mmcv has no rotated Soft-NMS).

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
from typing import Dict, Optional, Tuple

import torch
from mmcv.ops import batched_nms as mmcv_batched_nms
from mmcv.ops import box_iou_rotated
from mmcv.ops import soft_nms as mmcv_soft_nms
from torch import Tensor

_METHODS = ('naive', 'linear', 'gaussian')
_CFG_KEYS = {'type', 'iou_threshold', 'method', 'sigma', 'min_score', 'max_per_img',
             'class_agnostic'}


def _check_boxes(where: str, boxes: Tensor, scores: Tensor,
                 labels: Optional[Tensor] = None) -> None:
    if boxes.dim() != 2 or boxes.shape[1] not in (4, 5):
        raise ValueError(f'{where}: boxes must be (N, 4) x1y1x2y2 or (N, 5) (cx, cy, w, h, yaw), '
                         f'got shape {tuple(boxes.shape)}')
    if tuple(scores.shape) != (boxes.shape[0],):
        raise ValueError(f'{where}: scores must be ({boxes.shape[0]},) to match boxes '
                         f'{tuple(boxes.shape)}, got shape {tuple(scores.shape)}')
    if labels is not None and tuple(labels.shape) != (boxes.shape[0],):
        raise ValueError(f'{where}: labels must be ({boxes.shape[0]},) to match boxes '
                         f'{tuple(boxes.shape)}, got shape {tuple(labels.shape)}')


def _empty(boxes: Tensor) -> Tuple[Tensor, Tensor]:
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
    _check_boxes('soft_nms', boxes, scores)
    if method not in _METHODS:
        raise ValueError(f'soft_nms: method must be one of {_METHODS}, got {method!r}')
    if boxes.shape[0] == 0:
        return _empty(boxes)
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
    _check_boxes('batched_nms_3d', boxes, scores, labels)
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
        return _empty(boxes)
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


# The name the brief also suggested; same function.
batched_soft_nms = batched_nms_3d
