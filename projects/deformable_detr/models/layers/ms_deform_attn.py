"""Multi-scale deformable attention (Deformable DETR, Zhu et al. 2021), batch-first.

Each query looks at ``num_points`` learned locations around its reference point in each
of ``num_levels`` feature maps, per head, and takes a softmax-weighted sum of the
bilinearly sampled values. The kernel is :func:`projects.deformable_detr.ops.multi_scale_deformable_attn`.
"""
import math
from typing import Optional

import torch
from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from projects.deformable_detr.ops import multi_scale_deformable_attn, softmax_last_dim
from .reference_points import check_spatial_shapes, deformable_sampling_locations


@MODELS.register_module()
class MSDeformableAttention(BaseModule):
    """Multi-scale deformable attention with a residual connection.

    Parameter names (``sampling_offsets``, ``attention_weights``, ``value_proj``,
    ``output_proj``) match mmcv's ``MultiScaleDeformableAttention`` so checkpoints load.

    Args:
        embed_dims (int): Channels of query and value. Defaults to 256.
        num_heads (int): Attention heads. Defaults to 8.
        num_levels (int): Feature levels sampled. Defaults to 4.
        num_points (int): Sampling points per head and level. Defaults to 4.
        dropout (float): Dropout on the output before the residual. Defaults to 0.1.
        batch_first (bool): Kept for config compatibility with mmcv; only True is
            supported (tensors are always batch-first here).
        value_proj_ratio (float): Width of the projected value relative to
            ``embed_dims``. Defaults to 1.0.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 dropout: float = 0.1,
                 batch_first: bool = True,
                 value_proj_ratio: float = 1.0,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if not batch_first:
            raise ValueError('MSDeformableAttention is batch-first only; got batch_first=False')
        value_dims = int(embed_dims * value_proj_ratio)
        if value_dims % num_heads != 0:
            raise ValueError(f'value dims {value_dims} (embed_dims {embed_dims} x '
                             f'value_proj_ratio {value_proj_ratio}) must be divisible by '
                             f'num_heads {num_heads}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.batch_first = True
        num_samples = num_heads * num_levels * num_points
        self.sampling_offsets = nn.Linear(embed_dims, num_samples * 2)
        self.attention_weights = nn.Linear(embed_dims, num_samples)
        self.value_proj = nn.Linear(embed_dims, value_dims)
        self.output_proj = nn.Linear(value_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.init_weights()

    def init_weights(self) -> None:
        """The paper's initialisation.

        Offsets start on a ring: head h points in direction 2*pi*h/num_heads (scaled so
        the larger coordinate is 1) and point i sits i+1 units out, so the heads fan out
        over growing radii. Attention weights start uniform (zero logits); the value and
        output projections are xavier-uniform with zero bias.
        """
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi /
                                                                      self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], dim=-1)
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        radii = torch.arange(1, self.num_points + 1, dtype=torch.float32)
        ring = directions[:, None, None, :] * radii[None, None, :, None]
        ring = ring.expand(self.num_heads, self.num_levels, self.num_points, 2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(ring.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)
        self._is_init = True

    def forward(self,
                query: Tensor,
                value: Optional[Tensor] = None,
                reference_points: Optional[Tensor] = None,
                spatial_shapes: Optional[Tensor] = None,
                level_start_index: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None) -> Tensor:
        """Attend from each query to sampled points of the multi-scale value.

        Args:
            query (Tensor): (bs, num_query, embed_dims).
            value (Tensor, optional): (bs, num_value, embed_dims), the flattened levels
                (num_value = sum(h * w)). Defaults to ``query`` (self-attention).
            reference_points (Tensor): (bs, num_query, num_levels, 2) points (x, y) or
                (bs, num_query, num_levels, 4) boxes (cx, cy, w, h), in [0, 1] of each
                level's padded map.
            spatial_shapes (Tensor): (num_levels, 2) long, (h, w) of each level.
            level_start_index (Tensor): (num_levels,) long, offset of each level in
                ``value``.
            key_padding_mask (Tensor, optional): (bs, num_value) bool, True = padding
                (those values are zeroed).
            identity (Tensor, optional): (bs, num_query, embed_dims) added to the output;
                defaults to ``query`` (before ``query_pos``).
            query_pos (Tensor, optional): (bs, num_query, embed_dims) added to the query
                before predicting offsets and weights.

        Returns:
            Tensor: (bs, num_query, embed_dims).
        """
        if value is None:
            value = query
        if identity is None:
            identity = query
        if query_pos is not None:
            query = query + query_pos
        if reference_points is None or spatial_shapes is None or level_start_index is None:
            raise ValueError('MSDeformableAttention needs reference_points, spatial_shapes '
                             'and level_start_index')
        if query.dim() != 3 or query.shape[-1] != self.embed_dims:
            raise ValueError(f'query must be (bs, num_query, {self.embed_dims}), '
                             f'got {tuple(query.shape)}')
        bs, num_query, _ = query.shape
        if value.dim() != 3 or value.shape[0] != bs or value.shape[-1] != self.embed_dims:
            raise ValueError(f'value must be ({bs}, num_value, {self.embed_dims}), '
                             f'got {tuple(value.shape)}')
        num_value = value.shape[1]
        if spatial_shapes.shape[0] != self.num_levels:
            raise ValueError(f'spatial_shapes has {spatial_shapes.shape[0]} levels, the '
                             f'module was built for num_levels={self.num_levels}')
        check_spatial_shapes(spatial_shapes, num_value, 'MSDeformableAttention')
        if key_padding_mask is not None and key_padding_mask.shape != (bs, num_value):
            raise ValueError(f'key_padding_mask must be ({bs}, {num_value}), '
                             f'got {tuple(key_padding_mask.shape)}')

        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, num_value, self.num_heads, -1)

        offsets = self.sampling_offsets(query).view(bs, num_query, self.num_heads,
                                                    self.num_levels, self.num_points, 2)
        # one softmax over all levels and points of a head
        weights = self.attention_weights(query).view(bs, num_query, self.num_heads,
                                                     self.num_levels * self.num_points)
        weights = softmax_last_dim(weights).view(bs, num_query, self.num_heads, self.num_levels,
                                           self.num_points)
        locations = deformable_sampling_locations(reference_points, offsets, spatial_shapes)
        output = multi_scale_deformable_attn(value, spatial_shapes, level_start_index,
                                             locations, weights)
        return identity + self.dropout(self.output_proj(output))
