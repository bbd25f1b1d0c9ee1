"""One BEVFormer encoder layer: temporal self-attn, spatial cross-attn, FFN, each post-normed."""
from typing import Optional

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from .spatial_cross_attention import CameraQueries, SpatialCrossAttention
from .temporal_self_attention import TemporalSelfAttention


@MODELS.register_module()
class BEVFormerEncoderLayer(BaseModule):
    """Post-norm BEVFormer layer; each sub-block adds its own residual.

    Args:
        self_attn_cfg (dict, optional): kwargs of :class:`TemporalSelfAttention`.
        cross_attn_cfg (dict, optional): kwargs of :class:`SpatialCrossAttention`.
        ffn_cfg (dict, optional): kwargs of mmcv's ``FFN``. Default: 512 hidden, ReLU,
            dropout 0.1.
        norm_cfg (dict): norm after each sub-block. Default LayerNorm.
        with_cp (bool): gradient checkpointing of the whole layer while training (saves
            activation memory at the cost of a second forward).
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 self_attn_cfg: OptConfigType = None,
                 cross_attn_cfg: OptConfigType = None,
                 ffn_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(type='LN'),
                 with_cp: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        self_attn_cfg = dict(self_attn_cfg or {})
        cross_attn_cfg = dict(cross_attn_cfg or {})
        ffn = dict(embed_dims=256, feedforward_channels=512, num_fcs=2, ffn_drop=0.1,
                   act_cfg=dict(type='ReLU', inplace=True))
        ffn.update(ffn_cfg or {})
        for cfg in (self_attn_cfg, cross_attn_cfg, ffn):
            cfg.pop('type', None)  # the classes are fixed; a 'type' key is informational
        self.self_attn = TemporalSelfAttention(**self_attn_cfg)
        self.cross_attn = SpatialCrossAttention(**cross_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        if self.cross_attn.embed_dims != self.embed_dims or ffn['embed_dims'] != self.embed_dims:
            raise ValueError(f'BEVFormerEncoderLayer: embed_dims differ: self_attn '
                             f'{self.embed_dims}, cross_attn {self.cross_attn.embed_dims}, '
                             f'ffn {ffn["embed_dims"]}')
        self.ffn = FFN(**ffn)
        self.norms = nn.ModuleList(
            build_norm_layer(norm_cfg, self.embed_dims)[1] for _ in range(3))
        self.with_cp = with_cp

    def forward(self,
                query: Tensor,
                query_pos: Optional[Tensor],
                ref_2d: Tensor,
                bev_spatial_shapes: Tensor,
                bev_level_start_index: Tensor,
                value: Tensor,
                cam_plan: CameraQueries,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                prev_bev: Optional[Tensor] = None,
                prev_valid: Optional[Tensor] = None,
                prev_ref_2d: Optional[Tensor] = None,
                tsa_current: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            query (Tensor): (bs, bev_h * bev_w, C) BEV queries.
            query_pos (Tensor, optional): (bs, bev_h * bev_w, C) BEV positional encoding
                (temporal self-attention only).
            ref_2d (Tensor): (bs, bev_h * bev_w, 1, 2) normalized BEV cell centres.
            bev_spatial_shapes (Tensor): (1, 2) long, [[bev_h, bev_w]].
            bev_level_start_index (Tensor): (1,) long, [0].
            value (Tensor): (bs, num_cams, num_value, C) flattened camera features.
            cam_plan (CameraQueries): which queries each camera attends, from the projected
                pillar anchors (:meth:`SpatialCrossAttention.plan`, computed once per frame).
            spatial_shapes (Tensor): (num_levels, 2) long (H, W) of the feature levels.
            level_start_index (Tensor): (num_levels,) long.
            prev_bev (Tensor, optional): (bs, bev_h * bev_w, C) previous BEV aligned to now.
            prev_valid (Tensor, optional): (bs,) bool.
            prev_ref_2d (Tensor, optional): (bs, bev_h * bev_w, 1, 2) reference points of the
                previous-BEV member of temporal self-attention (default ``ref_2d``).
            tsa_current (Tensor, optional): (bs, bev_h * bev_w, C) current member of the
                temporal self-attention value (default: ``query``).

        Returns:
            Tensor: (bs, bev_h * bev_w, C).
        """
        args = (query, query_pos, ref_2d, bev_spatial_shapes, bev_level_start_index, value,
                cam_plan, spatial_shapes, level_start_index, prev_bev, prev_valid,
                prev_ref_2d, tsa_current)
        if self.with_cp and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, *args, use_reentrant=False)
        return self._forward(*args)

    def _forward(self, query: Tensor, query_pos: Optional[Tensor], ref_2d: Tensor,
                 bev_spatial_shapes: Tensor, bev_level_start_index: Tensor, value: Tensor,
                 cam_plan: CameraQueries, spatial_shapes: Tensor,
                 level_start_index: Tensor, prev_bev: Optional[Tensor],
                 prev_valid: Optional[Tensor], prev_ref_2d: Optional[Tensor],
                 tsa_current: Optional[Tensor]) -> Tensor:
        query = self.self_attn(query, ref_2d, bev_spatial_shapes, bev_level_start_index,
                               query_pos=query_pos, prev_bev=prev_bev, prev_valid=prev_valid,
                               prev_reference_points=prev_ref_2d, current_value=tsa_current)
        query = self.norms[0](query)
        # The BEV positional encoding enters temporal self-attention only (as the original:
        # its spatial cross-attention gets no query_pos).
        query = self.cross_attn(query, value, None, None, spatial_shapes, level_start_index,
                                plan=cam_plan)
        query = self.norms[1](query)
        query = self.ffn(query)
        return self.norms[2](query)
