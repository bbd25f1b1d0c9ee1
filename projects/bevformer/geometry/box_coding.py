"""Regression codes for 3D boxes, as predicted by the BEVFormer detection head.

Boxes follow docs/data_format.md: ``(x, y, z, l, w, h, yaw, vx, vy)`` in the LiDAR frame,
z at the box bottom, ``l`` along the heading. The 10-d code is

    (cx, cy, log l, log w, cz, log h, sin yaw, cos yaw, vx, vy)

with ``cz`` the gravity-centre height (bottom + h / 2). Centres stay in metres (the head
maps its sigmoid outputs to metres before the loss); sizes are regressed in log space and
the heading as (sin, cos) so that the code is continuous in yaw.
"""
import torch
from torch import Tensor

BOX_DIM = 9
CODE_SIZE = 10
# Columns of the code that hold the box centre (x, y, gravity-centre z).
CODE_CENTER_DIMS = (0, 1, 4)


def _check_last_dim(t: Tensor, expected: int, name: str) -> None:
    if t.dim() < 1 or t.shape[-1] != expected:
        raise ValueError(f'box_coding: {name} must have shape (..., {expected}), '
                         f'got {tuple(t.shape)}')


def encode_bboxes_3d(bboxes: Tensor) -> Tensor:
    """Encode boxes into regression codes.

    Args:
        bboxes (Tensor): (..., 9) ``(x, y, z_bottom, l, w, h, yaw, vx, vy)``; sizes > 0.

    Returns:
        Tensor: (..., 10) ``(cx, cy, log l, log w, cz, log h, sin, cos, vx, vy)``.
    """
    _check_last_dim(bboxes, BOX_DIM, 'bboxes')
    x, y, z, l, w, h, yaw, vx, vy = bboxes.unbind(-1)
    cz = z + 0.5 * h  # regress the gravity centre, as the original head does
    return torch.stack(
        [x, y, l.log(), w.log(), cz, h.log(), yaw.sin(), yaw.cos(), vx, vy], dim=-1)


def decode_bboxes_3d(codes: Tensor) -> Tensor:
    """Decode regression codes back into boxes.

    Args:
        codes (Tensor): (..., 10) ``(cx, cy, log l, log w, cz, log h, sin, cos, vx, vy)``;
            (sin, cos) need not be normalised.

    Returns:
        Tensor: (..., 9) ``(x, y, z_bottom, l, w, h, yaw, vx, vy)`` with yaw in (-pi, pi].
    """
    _check_last_dim(codes, CODE_SIZE, 'codes')
    cx, cy, log_l, log_w, cz, log_h, sin, cos, vx, vy = codes.unbind(-1)
    l, w, h = log_l.exp(), log_w.exp(), log_h.exp()
    yaw = torch.atan2(sin, cos)
    return torch.stack([cx, cy, cz - 0.5 * h, l, w, h, yaw, vx, vy], dim=-1)


def bev_rotated_boxes(bboxes: Tensor) -> Tensor:
    """Bird's-eye-view rotated rectangles of 3D boxes, for rotated IoU / NMS.

    The rectangle convention is mmcv's rotated box ``(cx, cy, w, h, angle)`` with the
    angle counter-clockwise in our right-handed (x forward, y left) frame, i.e. the
    first size runs along the heading: ``w_rot = l`` and ``h_rot = w``.

    Args:
        bboxes (Tensor): (..., >=7) ``(x, y, z, l, w, h, yaw, ...)``.

    Returns:
        Tensor: (..., 5) ``(x, y, l, w, yaw)``.
    """
    if bboxes.dim() < 1 or bboxes.shape[-1] < 7:
        raise ValueError('box_coding: bboxes must have shape (..., >=7), '
                         f'got {tuple(bboxes.shape)}')
    return bboxes[..., [0, 1, 3, 4, 6]]


def code_from_mmdet3d_v017(codes: Tensor) -> Tensor:
    """Box codes of the original BEVFormer (mmdet3d v0.17 boxes) <-> ours.

    The original regresses ``(cx, cy, log w, log l, cz, log h, sin a, cos a, vx, vy)`` with
    ``a = -yaw - pi / 2`` (see :func:`~projects.bevformer.geometry.boxes.boxes_from_mmdet3d_v017`);
    since ``sin yaw = -cos a`` and ``cos yaw = -sin a``, ours is a signed permutation of it:
    swap the log sizes, and ``(sin yaw, cos yaw) = (-cos a, -sin a)``. The map is linear and
    its own inverse, so it also converts the rows of a regression layer's weight and bias, and
    L1 distances between codes are the same in both conventions.

    Args:
        codes (Tensor): (..., 10) codes in one convention.

    Returns:
        Tensor: (..., 10) codes in the other.
    """
    _check_last_dim(codes, CODE_SIZE, 'codes')
    c = codes.unbind(-1)
    return torch.stack([c[0], c[1], c[3], c[2], c[4], c[5], -c[7], -c[6], c[8], c[9]], dim=-1)
