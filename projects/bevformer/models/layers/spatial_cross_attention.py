"""Spatial cross-attention (SCA): each BEV query attends to the cameras its pillar projects into."""
from typing import NamedTuple, Optional

import torch
from mmengine.model import BaseModule, xavier_init
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, OptMultiConfig
from .ms_deformable_attention_3d import MSDeformableAttention3D


@MODELS.register_module()
class SpatialCrossAttention(BaseModule):
    """BEV queries -> multi-camera image features through projected pillar anchors.

    For every (sample, camera) only the queries whose pillar hits that camera (any anchor inside
    the image, from that sample's ``bev_mask``) are gathered and padded to the longest such list
    (``max_len``), attended to that camera's features with :class:`MSDeformableAttention3D`, and
    scattered back. The per-query sum over cameras is divided by the number of cameras hit;
    queries no camera sees get 0. Then output projection, dropout and residual.

    Args:
        embed_dims (int): channels C. Default 256.
        num_cams (int): cameras per sample. Default 6.
        dropout (float): dropout on the projected output. Default 0.1.
        deformable_attention (dict, optional): kwargs of :class:`MSDeformableAttention3D`
            (``embed_dims`` is taken from here). Default: 8 heads, 4 levels, 8 points.
        init_cfg: mmengine init config (``init_weights`` does the standard init).
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_cams: int = 6,
                 dropout: float = 0.1,
                 deformable_attention: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        attn_cfg = dict(num_heads=8, num_levels=4, num_points=8)
        attn_cfg.update(deformable_attention or {})
        attn_cfg.pop('type', None)
        if attn_cfg.setdefault('embed_dims', embed_dims) != embed_dims:
            raise ValueError(f'SpatialCrossAttention: deformable_attention.embed_dims '
                             f'({attn_cfg["embed_dims"]}) != embed_dims ({embed_dims})')
        self.embed_dims = embed_dims
        self.num_cams = num_cams
        self.deformable_attention = MSDeformableAttention3D(**attn_cfg)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier output projection (the inner attention initializes itself)."""
        xavier_init(self.output_proj, distribution='uniform', bias=0.)

    @staticmethod
    def plan(reference_points_cam: Tensor, bev_mask: Tensor) -> 'CameraQueries':
        """Which queries each (sample, camera) attends with: computed once per frame.

        Args:
            reference_points_cam (Tensor): (bs, num_cams, num_query, D, 2) normalized pixel
                locations of the D pillar anchors in each camera.
            bev_mask (Tensor): (bs, num_cams, num_query, D) bool, anchor visible in the camera.

        Returns:
            CameraQueries: the gather plan shared by every encoder layer (one host sync here
            for the padded length, none in the layers).
        """
        if reference_points_cam.dim() != 5 or reference_points_cam.shape[-1] != 2:
            raise ValueError(f'SpatialCrossAttention: reference_points_cam must be (bs, '
                             f'num_cams, num_query, D, 2), got '
                             f'{tuple(reference_points_cam.shape)}')
        if bev_mask.shape != reference_points_cam.shape[:-1]:
            raise ValueError(f'SpatialCrossAttention: bev_mask must be '
                             f'{tuple(reference_points_cam.shape[:-1])}, got '
                             f'{tuple(bev_mask.shape)}')
        bs, num_cams, num_query, num_anchors = bev_mask.shape
        hit = bev_mask.any(dim=-1)  # (bs, num_cams, num_query)
        hits_per_view = hit.sum(dim=-1)  # (bs, num_cams)
        # Per (sample, camera): the hit query indices first, in ascending order. The order of
        # the slots does not change the result (each slot is one query, summed per query over
        # the cameras in camera order).
        miss = (~hit).to(torch.float32)
        if torch.onnx.is_in_onnx_export():
            # A static graph: every query gets a slot (misses are masked out), so the result
            # does not depend on how many queries the traced calibration made visible.
            max_len = num_query
            order = torch.argsort(miss, dim=-1)
        else:
            max_len = int(hits_per_view.max()) if hit.numel() else 0
            order = torch.sort(miss, dim=-1, stable=True).indices
        order = order[..., :max_len]  # (bs, num_cams, max_len)
        slot_valid = (torch.arange(max_len, device=bev_mask.device)[None, None, :] <
                      hits_per_view[..., None])  # (bs, num_cams, max_len)
        refs = torch.gather(reference_points_cam, 2,
                            order[..., None, None].expand(bs, num_cams, max_len, num_anchors, 2))
        # Padding slots get a harmless reference (their outputs are discarded).
        refs = torch.where(slot_valid[..., None, None], refs, torch.zeros_like(refs))
        count = hit.sum(dim=1).clamp(min=1)  # (bs, num_query) cameras hit
        # Padding slots scatter into a spare row num_query, dropped after the sum: no
        # per-layer masking of the attention output.
        target = torch.where(slot_valid, order, torch.full_like(order, num_query))
        return CameraQueries(order, slot_valid, refs, count, num_query, target)

    def forward(self,
                query: Tensor,
                value: Tensor,
                reference_points_cam: Optional[Tensor],
                bev_mask: Optional[Tensor],
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                query_pos: Optional[Tensor] = None,
                plan: Optional['CameraQueries'] = None) -> Tensor:
        """
        Args:
            query (Tensor): (bs, num_query, C) BEV queries; also the residual identity.
            value (Tensor): (bs, num_cams, num_value, C) flattened multi-level camera features.
            reference_points_cam (Tensor, optional): (bs, num_cams, num_query, D, 2) normalized
                pixel locations of the D pillar anchors in each camera (unused with ``plan``).
            bev_mask (Tensor, optional): (bs, num_cams, num_query, D) bool, anchor visible in
                the camera (unused with ``plan``).
            spatial_shapes (Tensor): (num_levels, 2) long (H, W) of the feature levels.
            level_start_index (Tensor): (num_levels,) long.
            query_pos (Tensor, optional): (bs, num_query, C) positional encoding added to the
                query (BEVFormer's encoder gives none).
            plan (CameraQueries, optional): :meth:`plan` of the two tensors above, computed
                once per frame by the encoder.

        Returns:
            Tensor: (bs, num_query, C).
        """
        if plan is None:
            plan = self.plan(reference_points_cam, bev_mask)
        bs, num_query, channels = query.shape
        num_cams = self.num_cams
        if value.dim() != 4 or value.shape[:2] != (bs, num_cams) or value.shape[3] != channels:
            raise ValueError(f'SpatialCrossAttention: value must be ({bs}, {num_cams}, num_value, '
                             f'{channels}), got {tuple(value.shape)}')
        if plan.order.shape[:2] != (bs, num_cams) or plan.num_query != num_query:
            raise ValueError(f'SpatialCrossAttention: the camera plan is for '
                             f'{tuple(plan.order.shape[:2])} (bs, num_cams) and '
                             f'{plan.num_query} queries, the query is {tuple(query.shape)}')
        identity = query
        if query_pos is not None:
            query = query + query_pos

        max_len = plan.order.shape[-1]
        slots = query.new_zeros(bs, num_query + 1, channels)  # + the padding slots' spare row
        if max_len > 0:
            queries = torch.gather(query[:, None].expand(bs, num_cams, num_query, channels), 2,
                                   plan.order[..., None].expand(bs, num_cams, max_len, channels))
            out = self.deformable_attention(queries.flatten(0, 1), value.flatten(0, 1),
                                            plan.refs.flatten(0, 1), spatial_shapes,
                                            level_start_index)
            out = out.view(bs, num_cams * max_len, channels).to(slots.dtype)
            target = plan.target.flatten(1, 2)[..., None].expand(bs, num_cams * max_len,
                                                                 channels)
            slots = slots.scatter_add_(1, target, out)
        slots = slots[:, :num_query] / plan.count.to(slots.dtype)[..., None]
        return identity + self.dropout(self.output_proj(slots))


class CameraQueries(NamedTuple):
    """Gather plan of spatial cross-attention (:meth:`SpatialCrossAttention.plan`)."""

    order: Tensor  # (bs, num_cams, max_len) query index of each slot, hit queries first
    slot_valid: Tensor  # (bs, num_cams, max_len) bool, the slot holds a hit query
    refs: Tensor  # (bs, num_cams, max_len, D, 2) reference points of the slots (0 if invalid)
    count: Tensor  # (bs, num_query) long, cameras that see each query (>= 1)
    num_query: int
    target: Tensor  # (bs, num_cams, max_len) row each slot adds into: order, num_query if padding
