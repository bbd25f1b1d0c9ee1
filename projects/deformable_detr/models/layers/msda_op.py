"""The one place the deformable layers import the multi-scale deformable attention op from.

Every layer calls :func:`multi_scale_deformable_attn` with the mmcv argument convention:
``value (bs, num_value, num_heads, head_dims)``, ``spatial_shapes (num_levels, 2)`` as
(h, w), ``level_start_index (num_levels,)``,
``sampling_locations (bs, num_query, num_heads, num_levels, num_points, 2)`` in [0, 1],
``attention_weights (bs, num_query, num_heads, num_levels, num_points)``; it returns
``(bs, num_query, num_heads * head_dims)``. It runs mmcv's CUDA kernel on CUDA tensors
and this project's PyTorch implementation elsewhere; swapping the implementation is a
one-line change here.
"""
from projects.deformable_detr.ops import multi_scale_deformable_attn

__all__ = ['multi_scale_deformable_attn']
