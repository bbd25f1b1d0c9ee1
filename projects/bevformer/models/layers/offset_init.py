"""Initial sampling offsets of deformable attention: each head looks along its own direction."""
import math

import torch
from torch import Tensor


def directional_offset_bias(num_heads: int, num_groups: int, num_points: int) -> Tensor:
    """Bias for a ``sampling_offsets`` Linear so that, before training, head ``h`` samples points
    ``1, 2, ..., num_points`` steps (feature-map cells) along the angle ``2 pi h / num_heads``
    (direction scaled so its larger component is 1), identically in every group (level / queue
    member / Z-anchor), as in Deformable DETR and BEVFormer.

    Returns:
        Tensor: (num_heads * num_groups * num_points * 2,) laid out as
        (num_heads, num_groups, num_points, 2).
    """
    thetas = torch.arange(num_heads, dtype=torch.float64) * (2.0 * math.pi / num_heads)
    direction = torch.stack((thetas.cos(), thetas.sin()), dim=-1)
    direction = direction / direction.abs().max(dim=-1, keepdim=True).values
    steps = torch.arange(1, num_points + 1, dtype=torch.float64)
    grid = direction[:, None, None, :] * steps[None, None, :, None]  # (heads, 1, points, 2)
    return grid.expand(num_heads, num_groups, num_points, 2).reshape(-1).float()
