"""Ego motion between consecutive frames: relative pose, can_bus deltas, previous-BEV alignment.

Frames follow docs/data_format.md: 4x4 matrices applied to column vectors, ``lidar2global`` per
frame, and ``prev2cur = inv(cur_lidar2global) @ prev_lidar2global`` maps a point from the
previous LiDAR frame into the current one. BEV conventions are those of ``geometry/bev.py``
(columns along x, rows along y, flat index ``row * bev_w + col``).
"""
import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .bev import bev_grid_2d, check_pc_range, denormalize_points
from .boxes import quaternion_to_yaw

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


def can_bus_deltas(cur_can_bus: Tensor, prev_can_bus: Tensor, prev_valid: Tensor,
                   wrap_yaw: bool = True) -> Tensor:
    """BEVFormer's can_bus input: translation and yaw (deg) as deltas from the previous frame.

    Entries [0:3] (ego2global translation) and [17] (yaw in degrees) become ``cur - prev``; the
    yaw delta is wrapped to [-180, 180) so a heading crossing 0/360 deg stays small (the original
    leaves it unwrapped: ``wrap_yaw=False``). Where ``prev_valid`` is False (first frame of a
    scene) those entries are 0, as in BEVFormer. All other entries keep their absolute current
    values.

    Args:
        cur_can_bus (Tensor): (bs, 18) absolute can_bus of the current frame.
        prev_can_bus (Tensor): (bs, 18) absolute can_bus of the previous frame.
        prev_valid (Tensor): (bs,) bool, the previous frame exists in the same scene.
        wrap_yaw (bool): wrap the yaw delta to [-180, 180). Default True.

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
    if wrap_yaw:
        delta[:, 3] = torch.remainder(delta[:, 3] + 180.0, 360.0) - 180.0
    out[:, idx] = torch.where(prev_valid.to(torch.bool)[:, None], delta,
                              torch.zeros_like(delta))
    return out


def rigid_inverse(mat: Tensor) -> Tensor:
    """Inverse of rigid 4x4 transforms, ``[R^T, -R^T t]`` (exact, and exportable to ONNX).

    Args:
        mat (Tensor): (..., 4, 4) rotation + translation.

    Returns:
        Tensor: (..., 4, 4).
    """
    rot_t = mat[..., :3, :3].transpose(-1, -2)
    top = torch.cat((rot_t, -(rot_t @ mat[..., :3, 3:4])), dim=-1)  # (..., 3, 4)
    return torch.cat((top, mat[..., 3:4, :]), dim=-2)  # the last row stays (0, 0, 0, 1)


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
        cur2prev = rigid_inverse(prev2cur.to(device=device, dtype=torch.float64))
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


# --------------------------------------------------------------------------------------------
# The original BEVFormer's ego-motion handling, reproduced for its legacy mode only
# (``models/legacy.py``): it rotates the previous BEV *image* about a fixed pixel and shifts the
# TSA reference points from the can_bus deltas instead of resampling exactly.


def rotate_bev_about_pixel(bev: Tensor, angle_deg: Tensor, center_xy: Sequence[float],
                           bev_h: int, bev_w: int) -> Tensor:
    """Rotate BEV maps counter-clockwise (in image coordinates) about a pixel, nearest sampling.

    The arithmetic of ``torchvision.transforms.functional.rotate(img, angle, center=center_xy)``
    on a float32 tensor (``InterpolationMode.NEAREST``, zero fill): the inverse affine matrix in
    float64 Python arithmetic, the sampling grid and ``grid_sample`` in float32, so the chosen
    source cells are those of the original BEVFormer (torchvision is not a dependency here).

    Args:
        bev (Tensor): (bs, bev_h * bev_w, C) flat row-major BEV maps.
        angle_deg (Tensor): (bs,) rotation angle in degrees (float64 on the host preferred).
        center_xy (sequence of 2 floats): rotation centre (column, row) in pixels, where pixel
            (c, r) covers [c, c + 1) x [r, r + 1); the original uses [100, 100].
        bev_h (int), bev_w (int): BEV grid size.

    Returns:
        Tensor: (bs, bev_h * bev_w, C), cells rotated in from outside the map are zero.
    """
    if bev.dim() != 3 or bev.shape[1] != bev_h * bev_w:
        raise ValueError(f'ego_motion.py: bev must be (bs, {bev_h * bev_w}, C) for a '
                         f'{bev_h}x{bev_w} BEV, got {tuple(bev.shape)}')
    bs, _, channels = bev.shape
    angles = [float(a) for a in torch.as_tensor(angle_deg).reshape(-1).tolist()]
    if len(angles) != bs:
        raise ValueError(f'ego_motion.py: angle_deg must have {bs} values, got {len(angles)}')
    # Centre relative to the image centre, as torchvision.
    cx = 1.0 * (float(center_xy[0]) - bev_w * 0.5)
    cy = 1.0 * (float(center_xy[1]) - bev_h * 0.5)
    thetas = []
    for angle in angles:
        rot = math.radians(-angle)  # torchvision's rotate inverts the sign for its affine
        cos, sin = math.cos(rot), math.sin(rot)
        # Inverse rotation about the centre, row-major 2x3 (output pixel -> input pixel).
        m = [cos, sin, 0.0, -sin, cos, 0.0]
        m[2] += m[0] * (-cx) + m[1] * (-cy)
        m[5] += m[3] * (-cx) + m[4] * (-cy)
        m[2] += cx
        m[5] += cy
        thetas.append(m)
    device = bev.device
    theta = torch.tensor(thetas, dtype=torch.float32, device=device).reshape(bs, 2, 3)
    # Pixel-centre grid relative to the image centre, then normalised by half the size.
    base = torch.empty(1, bev_h, bev_w, 3, dtype=torch.float32, device=device)
    base[..., 0].copy_(torch.linspace(-bev_w * 0.5 + 0.5, bev_w * 0.5 - 0.5, steps=bev_w,
                                      device=device))
    base[..., 1].copy_(torch.linspace(-bev_h * 0.5 + 0.5, bev_h * 0.5 - 0.5, steps=bev_h,
                                      device=device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scaled = theta.transpose(1, 2) / torch.tensor([0.5 * bev_w, 0.5 * bev_h],
                                                  dtype=torch.float32, device=device)
    grid = base.view(1, bev_h * bev_w, 3).expand(bs, -1, -1).bmm(scaled)
    image = bev.float().transpose(1, 2).reshape(bs, channels, bev_h, bev_w)
    out = F.grid_sample(image, grid.view(bs, bev_h, bev_w, 2), mode='nearest',
                        padding_mode='zeros', align_corners=False)
    return out.flatten(2).transpose(1, 2).to(bev.dtype)


def can_bus_bev_shift(can_bus: Tensor, bev_h: int, bev_w: int,
                      pc_range: Sequence[float]) -> Tensor:
    """The original BEVFormer's TSA reference-point shift from the can_bus deltas.

    ``d = can_bus[:, 0:2]`` (global-frame translation since the previous frame), ego yaw
    ``can_bus[:, 16]`` (rad); ``bev_angle = yaw - atan2(d_y, d_x)`` (deg in the original);
    ``shift_x = |d| sin(bev_angle) / cell_w / bev_w``, ``shift_y = |d| cos(bev_angle) / cell_h /
    bev_h`` with cells of ``(y_max - y_min) / bev_h`` by ``(x_max - x_min) / bev_w`` metres, in
    float64 like the original's numpy code.

    Args:
        can_bus (Tensor): (bs, 18) can_bus with translation deltas in [0:3] and the absolute
            ego yaw (rad) in [16].
        bev_h (int), bev_w (int): BEV grid size.
        pc_range (sequence of 6 floats): the BEV range.

    Returns:
        Tensor: (bs, 2) float32 shift ``(x, y)`` in normalised BEV units.
    """
    if can_bus.dim() != 2 or can_bus.shape[1] != CAN_BUS_DIM:
        raise ValueError(f'ego_motion.py: can_bus must be (bs, {CAN_BUS_DIM}), got '
                         f'{tuple(can_bus.shape)}')
    pc = check_pc_range(pc_range)
    cb = can_bus.detach().to(torch.float64)
    dx, dy = cb[:, 0], cb[:, 1]
    length = torch.sqrt(dx**2 + dy**2)
    # Degrees, then back to radians, as the original (keeps its rounding).
    bev_angle = cb[:, 16] / math.pi * 180 - torch.atan2(dy, dx) / math.pi * 180
    cell_h = (pc[4] - pc[1]) / bev_h
    cell_w = (pc[3] - pc[0]) / bev_w
    shift_y = length * torch.cos(bev_angle / 180 * math.pi) / cell_h / bev_h
    shift_x = length * torch.sin(bev_angle / 180 * math.pi) / cell_w / bev_w
    return torch.stack((shift_x, shift_y), dim=-1).float()


def can_bus_vector(translation: Sequence[float], rotation_wxyz: Sequence[float],
                   can: Optional[Sequence[float]] = None) -> np.ndarray:
    """The absolute 18-value can_bus of a frame (docs/data_format.md).

    Args:
        translation (sequence of 3 float): ego -> global translation (m).
        rotation_wxyz (sequence of 4 float): ego -> global rotation quaternion.
        can (sequence of 9 float, optional): CAN accel (3), rotation rate (3), velocity (3);
            zeros when unknown.

    Returns:
        ndarray: (18,) float64 ``[translation(3), quaternion(4), can(9), yaw rad, yaw deg]``
        with the yaw in [0, 2 pi) / [0, 360).
    """
    out = np.zeros(CAN_BUS_DIM)
    out[0:3] = translation
    out[3:7] = rotation_wxyz
    if can is not None:
        out[7:16] = can
    yaw = float(quaternion_to_yaw(np.asarray(rotation_wxyz, dtype=np.float64))) % (2 * np.pi)
    out[16] = yaw
    out[17] = np.degrees(yaw) % 360.0
    return out
