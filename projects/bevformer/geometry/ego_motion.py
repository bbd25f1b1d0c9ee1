"""Ego motion between consecutive frames: relative pose, can_bus deltas, previous-BEV alignment.

Frames follow docs/data_format.md: 4x4 matrices applied to column vectors, ``lidar2global`` per
frame, and ``prev2cur = inv(cur_lidar2global) @ prev_lidar2global`` maps a point from the
previous LiDAR frame into the current one. BEV conventions are those of ``geometry/bev.py``
(columns along x, rows along y, flat index ``row * bev_w + col``).
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .bev import bev_grid_2d, check_pc_range, denormalize_points

# can_bus entries that become deltas from the previous frame: translation [0:3], yaw deg [17].
CAN_BUS_DIM = 18
CAN_BUS_DELTA_INDICES = (0, 1, 2, 17)


def _check_poses(name: str, mat: Tensor) -> None:
    if mat.dim() != 3 or mat.shape[-2:] != (4, 4):
        raise ValueError(f'ego_motion.py: {name} must be (bs, 4, 4), got {tuple(mat.shape)}')


def relative_pose(prev_lidar2global: Tensor, cur_lidar2global: Tensor) -> Tensor:
    """Transform from the previous LiDAR frame into the current one.

    Args:
        prev_lidar2global (Tensor): (bs, 4, 4) previous frame's LiDAR -> global.
        cur_lidar2global (Tensor): (bs, 4, 4) current frame's LiDAR -> global.

    Returns:
        Tensor: (bs, 4, 4) ``prev2cur = inv(cur) @ prev`` (in the inputs' dtype; pass float64
        global poses, whose translations are ~1e3 m, to keep millimetre precision).
    """
    _check_poses('prev_lidar2global', prev_lidar2global)
    _check_poses('cur_lidar2global', cur_lidar2global)
    if prev_lidar2global.shape != cur_lidar2global.shape:
        raise ValueError(f'ego_motion.py: prev_lidar2global {tuple(prev_lidar2global.shape)} and '
                         f'cur_lidar2global {tuple(cur_lidar2global.shape)} differ')
    return torch.linalg.solve(cur_lidar2global, prev_lidar2global)


def can_bus_deltas(cur_can_bus: Tensor, prev_can_bus: Tensor, prev_valid: Tensor) -> Tensor:
    """BEVFormer's can_bus input: translation and yaw (deg) as deltas from the previous frame.

    Entries [0:3] (ego2global translation) and [17] (yaw in degrees) become ``cur - prev``; the
    yaw delta is wrapped to [-180, 180) so a heading crossing 0/360 deg stays small (the original
    leaves it unwrapped). Where ``prev_valid`` is False (first frame of a scene) those entries
    are 0, as in BEVFormer. All other entries keep their absolute current values.

    Args:
        cur_can_bus (Tensor): (bs, 18) absolute can_bus of the current frame.
        prev_can_bus (Tensor): (bs, 18) absolute can_bus of the previous frame.
        prev_valid (Tensor): (bs,) bool, the previous frame exists in the same scene.

    Returns:
        Tensor: (bs, 18).
    """
    if cur_can_bus.dim() != 2 or cur_can_bus.shape[1] != CAN_BUS_DIM:
        raise ValueError(f'ego_motion.py: cur_can_bus must be (bs, {CAN_BUS_DIM}), got '
                         f'{tuple(cur_can_bus.shape)}')
    if prev_can_bus.shape != cur_can_bus.shape:
        raise ValueError(f'ego_motion.py: prev_can_bus must be {tuple(cur_can_bus.shape)}, got '
                         f'{tuple(prev_can_bus.shape)}')
    if prev_valid.shape != (cur_can_bus.shape[0], ):
        raise ValueError(f'ego_motion.py: prev_valid must be ({cur_can_bus.shape[0]},), got '
                         f'{tuple(prev_valid.shape)}')
    out = cur_can_bus.clone()
    idx = list(CAN_BUS_DELTA_INDICES)
    delta = cur_can_bus[:, idx] - prev_can_bus[:, idx]
    delta[:, 3] = torch.remainder(delta[:, 3] + 180.0, 360.0) - 180.0
    out[:, idx] = torch.where(prev_valid.to(torch.bool)[:, None], delta,
                              torch.zeros_like(delta))
    return out


def align_prev_bev(prev_bev: Tensor, prev2cur: Tensor, bev_h: int, bev_w: int,
                   pc_range: Sequence[float]) -> Tuple[Tensor, Tensor]:
    """Resample the previous BEV onto the current BEV grid (exact shift + rotation).

    Every current cell centre ``p`` (current LiDAR frame, z = 0) is mapped to the previous frame
    by ``inv(prev2cur)``, and the previous BEV is bilinearly sampled there (zeros outside). This
    rotates about the ego position, for any BEV size and range; the original BEVFormer instead
    rotated the image about a hard-coded pixel ``[100, 100]`` and shifted reference points.

    Args:
        prev_bev (Tensor): (bs, bev_h * bev_w, C) BEV of the previous frame.
        prev2cur (Tensor): (bs, 4, 4) previous LiDAR -> current LiDAR.
        bev_h (int), bev_w (int): BEV grid size.
        pc_range (sequence of 6 floats): the BEV range (same for both frames).

    Returns:
        tuple[Tensor, Tensor]:
        - aligned (Tensor): (bs, bev_h * bev_w, C), ``prev_bev``'s dtype.
        - valid (Tensor): (bs, bev_h * bev_w) bool, the cell centre falls inside the previous
          BEV's extent.
    """
    pc = check_pc_range(pc_range)
    if prev_bev.dim() != 3 or prev_bev.shape[1] != bev_h * bev_w:
        raise ValueError(f'ego_motion.py: prev_bev must be (bs, {bev_h * bev_w}, C) for a '
                         f'{bev_h}x{bev_w} BEV, got {tuple(prev_bev.shape)}')
    bs, num_cells, channels = prev_bev.shape
    if prev2cur.shape != (bs, 4, 4):
        raise ValueError(f'ego_motion.py: prev2cur must be ({bs}, 4, 4), got '
                         f'{tuple(prev2cur.shape)}')
    device = prev_bev.device
    with torch.autocast(device_type=device.type, enabled=False):
        cur2prev = torch.linalg.inv(prev2cur.to(device=device, dtype=torch.float64))
        cells = denormalize_points(
            bev_grid_2d(bev_h, bev_w, 1, device, torch.float64)[0, :, 0], pc)  # (HW, 2) metres
        # Planar part of the 4x4 applied to (x, y, 0, 1).
        src = torch.einsum('bij,qj->bqi', cur2prev[:, :2, :2], cells) + cur2prev[:, None, :2, 3]
        lo = src.new_tensor(pc[:2])
        hi = src.new_tensor(pc[3:5])
        src_n = (src - lo) / (hi - lo)  # (bs, HW, 2) normalized in the previous BEV
        valid = ((src_n >= 0) & (src_n <= 1)).all(-1)
        grid = (src_n * 2 - 1).to(torch.float32).view(bs, bev_h, bev_w, 2)
        image = prev_bev.float().transpose(1, 2).reshape(bs, channels, bev_h, bev_w)
        aligned = F.grid_sample(image, grid, mode='bilinear', padding_mode='zeros',
                                align_corners=False)
    aligned = aligned.flatten(2).transpose(1, 2).to(prev_bev.dtype)
    return aligned, valid
