"""Temporal self-attention (TSA): BEV queries attend to [previous BEV aligned to now, itself]."""
from typing import Optional

import torch
from mmengine.model import BaseModule, constant_init, xavier_init
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from projects.deformable_detr.ops import softmax_last_dim
from .msda_op import multi_scale_deformable_attn
from .offset_init import directional_offset_bias


@MODELS.register_module()
class TemporalSelfAttention(BaseModule):
    """Deformable attention over the 2-frame BEV queue ``[aligned previous BEV, current query]``.

    Sampling offsets and weights of both queue members are predicted from
    ``cat(prev_bev, query + query_pos)``; each member is attended with its own offsets / weights
    (``num_points`` points, ``num_levels`` BEV levels), the two results are averaged, projected,
    dropped out and added to the query. Where a sample has no previous BEV, its current query
    stands in for it. Batch-first; samples never mix.

    Args:
        embed_dims (int): channels C. Default 256.
        num_heads (int): attention heads (must divide C). Default 8.
        num_levels (int): BEV levels in the value. Default 1.
        num_points (int): sampling points per head, level and queue member. Default 4.
        dropout (float): dropout on the projected output. Default 0.1.
        init_cfg: mmengine init config (``init_weights`` does the standard init).
    """

    num_bev_queue = 2  # [previous BEV, current query]

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 1,
                 num_points: int = 4,
                 dropout: float = 0.1,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if embed_dims % num_heads != 0:
            raise ValueError(f'TemporalSelfAttention: embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        queue = self.num_bev_queue
        self.sampling_offsets = nn.Linear(embed_dims * queue,
                                          queue * num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims * queue,
                                           queue * num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.init_weights()

    def init_weights(self) -> None:
        """Zero offset weights with directional biases, uniform attention, xavier projections."""
        constant_init(self.sampling_offsets, 0.)
        self.sampling_offsets.bias.data.copy_(
            directional_offset_bias(self.num_heads, self.num_bev_queue * self.num_levels,
                                    self.num_points))
        constant_init(self.attention_weights, val=0., bias=0.)
        xavier_init(self.value_proj, distribution='uniform', bias=0.)
        xavier_init(self.output_proj, distribution='uniform', bias=0.)

    def forward(self,
                query: Tensor,
                reference_points: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                query_pos: Optional[Tensor] = None,
                prev_bev: Optional[Tensor] = None,
                prev_valid: Optional[Tensor] = None,
                prev_reference_points: Optional[Tensor] = None,
                current_value: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            query (Tensor): (bs, num_query, C) current BEV queries (no positional encoding);
                also the residual identity.
            reference_points (Tensor): (bs, num_query, num_levels, 2) normalized (x, y).
            spatial_shapes (Tensor): (num_levels, 2) long (H, W) of the BEV; the H*W must sum
                to num_query (not checked here: it would sync the device in every layer).
            level_start_index (Tensor): (num_levels,) long.
            query_pos (Tensor, optional): (bs, num_query, C) BEV positional encoding.
            prev_bev (Tensor, optional): (bs, num_query, C) previous BEV already aligned to the
                current frame; None means no sample has one.
            prev_valid (Tensor, optional): (bs,) bool, which samples' ``prev_bev`` is real
                (default: all, when ``prev_bev`` is given).
            prev_reference_points (Tensor, optional): (bs, num_query, num_levels, 2) reference
                points of the previous-BEV queue member (default: ``reference_points``; the
                original BEVFormer shifts them by the ego motion, ``models/legacy.py``).
            current_value (Tensor, optional): (bs, num_query, C) current-frame queue member
                where a sample has a previous BEV (default: ``query``; the original uses the
                initial BEV query, ``models/legacy.py``).

        Returns:
            Tensor: (bs, num_query, C).
        """
        bs, num_query, channels = query.shape
        if channels != self.embed_dims:
            raise ValueError(f'TemporalSelfAttention: query must be (bs, num_query, '
                             f'{self.embed_dims}), got {tuple(query.shape)}')
        if reference_points.shape != (bs, num_query, self.num_levels, 2):
            raise ValueError(f'TemporalSelfAttention: reference_points must be ({bs}, {num_query}, '
                             f'{self.num_levels}, 2), got {tuple(reference_points.shape)}')
        if prev_reference_points is None:
            prev_reference_points = reference_points
        elif prev_reference_points.shape != reference_points.shape:
            raise ValueError(f'TemporalSelfAttention: prev_reference_points must be '
                             f'{tuple(reference_points.shape)}, got '
                             f'{tuple(prev_reference_points.shape)}')
        identity = query
        prev, cur = query, query
        if prev_bev is not None:
            for name, t in (('prev_bev', prev_bev), ('current_value', current_value)):
                if t is not None and t.shape != query.shape:
                    raise ValueError(f'TemporalSelfAttention: {name} must be '
                                     f'{tuple(query.shape)}, got {tuple(t.shape)}')
            prev = prev_bev.to(query.dtype)
            if current_value is not None:
                cur = current_value.to(query.dtype)
            if prev_valid is not None:
                if prev_valid.shape != (bs, ):
                    raise ValueError(f'TemporalSelfAttention: prev_valid must be ({bs},), got '
                                     f'{tuple(prev_valid.shape)}')
                valid = prev_valid.to(torch.bool)[:, None, None]
                prev = torch.where(valid, prev, query)
                if current_value is not None:  # otherwise cur is query on both sides
                    cur = torch.where(valid, cur, query)
        query_with_pos = query if query_pos is None else query + query_pos

        queue = self.num_bev_queue
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        # (bs, queue, num_query, C) -> (bs * queue, ...): sample-major, member-minor.
        value = self.value_proj(torch.stack((prev, cur), dim=1))
        value = value.reshape(bs * queue, num_query, heads, channels // heads)

        offset_input = torch.cat((prev, query_with_pos), dim=-1)
        offsets = self.sampling_offsets(offset_input).view(bs, num_query, heads, queue, levels,
                                                           points, 2)
        weights = self.attention_weights(offset_input).view(bs, num_query, heads, queue,
                                                            levels * points)
        weights = softmax_last_dim(weights).view(bs, num_query, heads, queue, levels, points)
        offsets = offsets.permute(0, 3, 1, 2, 4, 5, 6).reshape(bs * queue, num_query, heads,
                                                               levels, points, 2)
        weights = weights.permute(0, 3, 1, 2, 4, 5).reshape(bs * queue, num_query, heads, levels,
                                                            points)
        # Offsets are in cells of each level: divide by (W, H); locations in fp32 (autocast).
        normalizer = spatial_shapes.flip(-1).float()
        ref = torch.stack((prev_reference_points, reference_points), dim=1).float().flatten(0, 1)
        locations = (ref[:, :, None, :, None, :] +
                     offsets.float() / normalizer[None, None, None, :, None, :])
        out = multi_scale_deformable_attn(value, spatial_shapes, level_start_index, locations,
                                          weights)
        out = out.view(bs, queue, num_query, channels).mean(dim=1)
        return identity + self.dropout(self.output_proj(out))
