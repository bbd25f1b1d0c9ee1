"""Reference-point geometry of deformable attention, as small pure functions.

All coordinates are normalised to [0, 1] over the *padded* feature map, x first:
(0, 0) is the top-left corner and (1, 1) the bottom-right corner of the padded map.
``valid_ratios (bs, num_levels, 2)`` give, per image and level, the (w, h) fraction of the
padded map that holds real pixels.
"""
import torch
from torch import Tensor


def check_spatial_shapes(spatial_shapes: Tensor, num_value: int, where: str) -> None:
    """Raise a ValueError unless ``spatial_shapes (num_levels, 2)`` covers ``num_value``."""
    if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2:
        raise ValueError(f'{where}: spatial_shapes must be (num_levels, 2) as (h, w), '
                         f'got {tuple(spatial_shapes.shape)}')
    total = int((spatial_shapes[:, 0] * spatial_shapes[:, 1]).sum())
    if total != num_value:
        raise ValueError(f'{where}: value holds {num_value} elements but spatial_shapes '
                         f'{spatial_shapes.tolist()} sum to {total}')


def encoder_reference_points(spatial_shapes: Tensor, valid_ratios: Tensor) -> Tensor:
    """Reference points of the encoder: the centre of every feature-map cell.

    A cell centre is normalised by the *valid* extent of its own level, then projected
    onto every level by that level's valid ratio, so a point lands on the same image
    location in all levels whatever the padding.

    Args:
        spatial_shapes (Tensor): (num_levels, 2) as (h, w).
        valid_ratios (Tensor): (bs, num_levels, 2) as (w, h).

    Returns:
        Tensor: (bs, sum(h * w), num_levels, 2) as (x, y).
    """
    if valid_ratios.dim() != 3 or valid_ratios.shape[1:] != (spatial_shapes.shape[0], 2):
        raise ValueError(f'valid_ratios must be (bs, {spatial_shapes.shape[0]}, 2), '
                         f'got {tuple(valid_ratios.shape)}')
    per_level = []
    for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
        ys, xs = torch.meshgrid(
            torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=valid_ratios.device),
            torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=valid_ratios.device),
            indexing='ij')
        # (bs, h*w) normalised by the valid part of this level
        xs = xs.reshape(1, -1) / (valid_ratios[:, lvl, 0:1] * w)
        ys = ys.reshape(1, -1) / (valid_ratios[:, lvl, 1:2] * h)
        per_level.append(torch.stack((xs, ys), dim=-1))
    points = torch.cat(per_level, dim=1)  # (bs, sum(h*w), 2)
    return points[:, :, None] * valid_ratios[:, None]


def reference_points_per_level(reference_points: Tensor, valid_ratios: Tensor) -> Tensor:
    """Scale image-normalised points or boxes to every level's padded map.

    Args:
        reference_points (Tensor): (bs, num_query, 2) points (x, y) or
            (bs, num_query, 4) boxes (cx, cy, w, h), normalised by the valid image extent.
        valid_ratios (Tensor): (bs, num_levels, 2) as (w, h).

    Returns:
        Tensor: (bs, num_query, num_levels, 2 or 4).
    """
    dim = reference_points.shape[-1]
    if reference_points.dim() != 3 or dim not in (2, 4):
        raise ValueError('reference_points must be (bs, num_query, 2 or 4), '
                         f'got {tuple(reference_points.shape)}')
    ratios = valid_ratios if dim == 2 else torch.cat([valid_ratios, valid_ratios], dim=-1)
    return reference_points[:, :, None] * ratios[:, None]


def deformable_sampling_locations(reference_points: Tensor, sampling_offsets: Tensor,
                                  spatial_shapes: Tensor) -> Tensor:
    """Where each head samples each level: reference point plus a learned offset.

    For 2-d reference points the offsets are in cells of the level's feature map; for
    4-d reference boxes they are in units of half the box size, divided by num_points so
    that the initial ring of points stays inside the box.

    Args:
        reference_points (Tensor): (bs, num_query, num_levels, 2 or 4) in [0, 1].
        sampling_offsets (Tensor): (bs, num_query, num_heads, num_levels, num_points, 2).
        spatial_shapes (Tensor): (num_levels, 2) as (h, w).

    Returns:
        Tensor: (bs, num_query, num_heads, num_levels, num_points, 2) as (x, y) in [0, 1]
        (outside means zero padding).
    """
    bs, num_query, _, num_levels, num_points, _ = sampling_offsets.shape
    dim = reference_points.shape[-1]
    if reference_points.shape[:3] != (bs, num_query, num_levels) or dim not in (2, 4):
        raise ValueError(f'reference_points must be ({bs}, {num_query}, {num_levels}, 2 or 4), '
                         f'got {tuple(reference_points.shape)}')
    ref = reference_points[:, :, None, :, None]  # (bs, nq, 1, L, 1, dim)
    if dim == 2:
        wh = spatial_shapes.flip(-1).to(sampling_offsets.dtype)  # (L, 2) as (w, h)
        return ref + sampling_offsets / wh[None, None, None, :, None, :]
    return ref[..., :2] + sampling_offsets / num_points * ref[..., 2:] * 0.5
