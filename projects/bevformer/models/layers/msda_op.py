"""The multi-scale deformable attention op used by every BEVFormer attention (one switch point).

BEVFormer runs the op in fp32 whatever the surrounding precision (the original wraps it in
``custom_fwd(cast_inputs=torch.float32)``); this wrapper does the same around the shared op of
``projects.deformable_detr.ops`` (mmcv's CUDA kernel on GPU, a PyTorch op elsewhere).
"""
import torch
from torch import Tensor

from projects.deformable_detr.ops import multi_scale_deformable_attn as _msda


def multi_scale_deformable_attn(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                                sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Multi-scale deformable attention, always evaluated in fp32.

    Args:
        value (Tensor): (bs, num_value, num_heads, head_dims).
        spatial_shapes (Tensor): (num_levels, 2) long, (H, W) of each level.
        level_start_index (Tensor): (num_levels,) long, offset of each level in ``num_value``.
        sampling_locations (Tensor): (bs, num_query, num_heads, num_levels, num_points, 2),
            normalized (x, y) in [0, 1] (``align_corners=False``).
        attention_weights (Tensor): (bs, num_query, num_heads, num_levels, num_points).

    Returns:
        Tensor: (bs, num_query, num_heads * head_dims) in ``value``'s dtype.
    """
    with torch.autocast(device_type=value.device.type, enabled=False):
        out = _msda(value.float(), spatial_shapes, level_start_index, sampling_locations.float(),
                    attention_weights.float())
    return out.to(value.dtype)
