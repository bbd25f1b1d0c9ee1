"""BEV grid geometry: 2-D cell centres, 3-D pillar points and their projection into the cameras.

Conventions (shared by every function here and by the BEV encoder):

- The BEV is a ``bev_h x bev_w`` grid over the LiDAR-frame rectangle
  ``pc_range = (x_min, y_min, z_min, x_max, y_max, z_max)`` (metres).
- Columns run along LiDAR **x**, rows along LiDAR **y**; the flat index of cell ``(row, col)``
  is ``row * bev_w + col`` (row-major). A BEV feature map ``(bs, bev_h * bev_w, C)`` therefore
  reshapes to the image ``(bs, C, bev_h, bev_w)`` with x along the width, which is what
  ``F.grid_sample`` and the deformable-attention op expect.
- Normalized coordinates are in [0, 1]: ``x_n = (x - x_min) / (x_max - x_min)`` etc.; cell
  centres sit at ``(i + 0.5) / n`` (the ``align_corners=False`` convention of the op).
- The last dimension of every point tensor is ordered ``(x, y)`` or ``(x, y, z)``.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .camera import project_points, visibility_mask

ShapeLike = Union[Sequence[int], Tensor]


def check_pc_range(pc_range: Sequence[float]) -> Tuple[float, ...]:
    values = tuple(float(v) for v in pc_range)
    if len(values) != 6:
        raise ValueError(f'bev.py: pc_range must have 6 values (x_min, y_min, z_min, x_max, '
                         f'y_max, z_max), got {len(values)}: {values}')
    if not (values[3] > values[0] and values[4] > values[1] and values[5] > values[2]):
        raise ValueError(f'bev.py: pc_range needs max > min on every axis, got {values}')
    return values


def bev_grid_2d(bev_h: int,
                bev_w: int,
                bs: int,
                device: Optional[Union[str, torch.device]] = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalized centres of the BEV cells, the 2-D reference points of temporal self-attention.

    Args:
        bev_h (int): number of rows (along LiDAR y).
        bev_w (int): number of columns (along LiDAR x).
        bs (int): batch size.

    Returns:
        Tensor: (bs, bev_h * bev_w, 1, 2) with ``[..., 0] = x_n = (col + 0.5) / bev_w`` and
        ``[..., 1] = y_n = (row + 0.5) / bev_h``, flat index ``row * bev_w + col``. The singleton
        dimension is the (single) feature level.
    """
    ys = (torch.arange(bev_h, device=device, dtype=dtype) + 0.5) / bev_h
    xs = (torch.arange(bev_w, device=device, dtype=dtype) + 0.5) / bev_w
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    ref = torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=-1)
    return ref[None, :, None, :].expand(bs, -1, -1, -1).contiguous()


def pillar_points_3d(bev_h: int,
                     bev_w: int,
                     num_points_in_pillar: int,
                     pc_range: Sequence[float],
                     bs: int,
                     device: Optional[Union[str, torch.device]] = None,
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalized 3-D anchor points of every BEV pillar (spatial cross-attention reference points).

    The ``num_points_in_pillar`` heights are evenly spaced from 0.5 m above ``z_min`` to 0.5 m
    below ``z_max`` (BEVFormer's choice; for z in [-5, 3] and 4 points: -4.5, -2.17, 0.17, 2.5 m).

    Args:
        bev_h (int), bev_w (int): BEV grid size.
        num_points_in_pillar (int): number D of heights per pillar.
        pc_range (sequence of 6 floats): (x_min, y_min, z_min, x_max, y_max, z_max) in metres.
        bs (int): batch size.

    Returns:
        Tensor: (bs, D, bev_h * bev_w, 3) normalized (x, y, z), flat index ``row * bev_w + col``.
    """
    pc = check_pc_range(pc_range)
    if num_points_in_pillar < 1:
        raise ValueError(f'bev.py: num_points_in_pillar must be >= 1, got {num_points_in_pillar}')
    z_extent = pc[5] - pc[2]
    if num_points_in_pillar == 1:
        zs = torch.full((1, ), 0.5, device=device, dtype=dtype)
    else:
        zs = torch.linspace(0.5, z_extent - 0.5, num_points_in_pillar, device=device,
                            dtype=dtype) / z_extent
    xy = bev_grid_2d(bev_h, bev_w, 1, device, dtype)[0, :, 0]  # (HW, 2)
    num_cells = xy.shape[0]
    xyz = torch.cat((xy[None].expand(num_points_in_pillar, -1, -1),
                     zs[:, None, None].expand(-1, num_cells, 1)), dim=-1)
    return xyz[None].expand(bs, -1, -1, -1).contiguous()


def denormalize_points(points: Tensor, pc_range: Sequence[float]) -> Tensor:
    """Map normalized points to metres in the LiDAR frame.

    Args:
        points (Tensor): (..., 2) or (..., 3) normalized (x, y[, z]).
        pc_range (sequence of 6 floats): the BEV range.

    Returns:
        Tensor: same shape, in metres.
    """
    pc = check_pc_range(pc_range)
    k = points.shape[-1]
    if k not in (2, 3):
        raise ValueError(f'bev.py: points must end in 2 or 3 coordinates, got shape '
                         f'{tuple(points.shape)}')
    lo = points.new_tensor(pc[:k])
    hi = points.new_tensor(pc[3:3 + k])
    return points * (hi - lo) + lo


def _as_hw(shape: ShapeLike, bs: int, name: str, device: torch.device) -> Tensor:
    """(H, W) as a (bs, 2) float32 tensor; accepts a pair or a per-sample (bs, 2) tensor."""
    hw = torch.as_tensor(shape, dtype=torch.float32, device=device)
    if hw.shape == (2, ):
        hw = hw[None].expand(bs, 2)
    if hw.shape != (bs, 2):
        raise ValueError(f'bev.py: {name} must be (H, W) or a ({bs}, 2) tensor, got shape '
                         f'{tuple(hw.shape)}')
    return hw


def project_points_to_cameras(ref_3d: Tensor,
                              pc_range: Sequence[float],
                              lidar2img: Tensor,
                              img_shape: ShapeLike,
                              pad_shape: ShapeLike,
                              eps: float = 1e-5) -> Tuple[Tensor, Tensor]:
    """Project normalized pillar points into every camera.

    The projection and the visibility rule are ``camera.project_points`` and
    ``camera.visibility_mask``, computed in fp32 with autocast disabled (and without matmul,
    so TF32 cannot round it), whatever the caller's precision.

    Args:
        ref_3d (Tensor): (bs, D, num_query, 3) normalized (x, y, z) in the LiDAR frame.
        pc_range (sequence of 6 floats): the BEV range used to denormalize ``ref_3d``.
        lidar2img (Tensor): (bs, N_cam, 4, 4) LiDAR -> pixel projection (``cam2img4 @ lidar2cam``)
            for the images as fed to the backbone (after resize / crop).
        img_shape: (H, W) of the valid image region (before padding), or a (bs, 2) tensor.
        pad_shape: (H, W) of the padded images the features were computed on, or (bs, 2).
        eps (float): minimum depth (m) of a visible point.

    Returns:
        tuple[Tensor, Tensor]:
        - ref_cam (Tensor): (bs, N_cam, num_query, D, 2) pixel (u, v) divided by the padded
          (W, H), i.e. the sampling location on the feature maps in [0, 1] when visible.
        - bev_mask (Tensor): (bs, N_cam, num_query, D) bool, depth > eps and the pixel inside the
          valid image ``0 < u < W_img, 0 < v < H_img``.
    """
    if ref_3d.dim() != 4 or ref_3d.shape[-1] != 3:
        raise ValueError(f'bev.py: ref_3d must be (bs, D, num_query, 3), got '
                         f'{tuple(ref_3d.shape)}')
    bs = ref_3d.shape[0]
    if lidar2img.dim() != 4 or lidar2img.shape[0] != bs or lidar2img.shape[-2:] != (4, 4):
        raise ValueError(f'bev.py: lidar2img must be ({bs}, N_cam, 4, 4), got '
                         f'{tuple(lidar2img.shape)}')
    device = ref_3d.device
    img_hw = _as_hw(img_shape, bs, 'img_shape', device)
    pad_hw = _as_hw(pad_shape, bs, 'pad_shape', device)
    with torch.autocast(device_type=device.type, enabled=False):
        pts = denormalize_points(ref_3d.float(), pc_range)  # (bs, D, Q, 3)
        mat = lidar2img.to(device=device, dtype=torch.float32)
        # points (bs, 1, D, Q, 3) with lidar2img (bs, N, 1, 4, 4) -> (bs, N, D, Q, .)
        uv, depth = project_points(pts[:, None], mat[:, :, None], eps=eps)
        bev_mask = visibility_mask(uv, depth, img_hw[:, None, None, None], min_depth=eps)
        ref_cam = uv / pad_hw.flip(-1)[:, None, None, None, :]  # (W, H) order to match (u, v)
    # (bs, N, D, Q, .) -> (bs, N, Q, D, .)
    return ref_cam.permute(0, 1, 3, 2, 4).contiguous(), bev_mask.permute(0, 1, 3, 2).contiguous()
