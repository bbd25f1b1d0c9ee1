"""Deformable DETR encoder: multi-scale deformable self-attention over flattened levels."""
import copy

from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from .ms_deform_attn import MSDeformableAttention
from .reference_points import encoder_reference_points


def _batch_first_cfg(cfg: OptConfigType, default: dict, where: str) -> dict:
    """Copy an attention config, defaulting to batch-first and refusing the other layout."""
    cfg = copy.deepcopy(default if cfg is None else dict(cfg))
    if not cfg.setdefault('batch_first', True):
        raise ValueError(f'{where}: batch_first must be True, got False')
    return cfg


@MODELS.register_module()
class DeformableEncoderLayer(BaseModule):
    """Post-norm encoder layer: deformable self-attention, norm, FFN, norm.

    Args:
        self_attn_cfg (dict): kwargs of :class:`MSDeformableAttention`.
        ffn_cfg (dict): kwargs of mmcv's ``FFN``.
        norm_cfg (dict): Normalisation layer config. Defaults to LayerNorm.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 self_attn_cfg: OptConfigType = None,
                 ffn_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(type='LN'),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        self.self_attn_cfg = _batch_first_cfg(self_attn_cfg, dict(embed_dims=256),
                                              'DeformableEncoderLayer.self_attn_cfg')
        self.ffn_cfg = copy.deepcopy(
            dict(embed_dims=256, feedforward_channels=1024, ffn_drop=0.1)
            if ffn_cfg is None else dict(ffn_cfg))
        self.self_attn = MSDeformableAttention(**self.self_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = FFN(**self.ffn_cfg)
        self.norms = ModuleList(
            [build_norm_layer(norm_cfg, self.embed_dims)[1] for _ in range(2)])

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Tensor,
                reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor) -> Tensor:
        """
        Args:
            query (Tensor): (bs, num_value, embed_dims), the flattened feature levels.
            query_pos (Tensor): (bs, num_value, embed_dims), positional + level embedding.
            key_padding_mask (Tensor): (bs, num_value) bool, True = padding.
            reference_points (Tensor): (bs, num_value, num_levels, 2).
            spatial_shapes (Tensor): (num_levels, 2) as (h, w).
            level_start_index (Tensor): (num_levels,).

        Returns:
            Tensor: (bs, num_value, embed_dims).
        """
        query = self.self_attn(query, value=query, query_pos=query_pos,
                               key_padding_mask=key_padding_mask,
                               reference_points=reference_points,
                               spatial_shapes=spatial_shapes,
                               level_start_index=level_start_index)
        query = self.norms[0](query)
        query = self.ffn(query)
        return self.norms[1](query)


@MODELS.register_module()
class DeformableEncoder(BaseModule):
    """A stack of :class:`DeformableEncoderLayer` (no final norm).

    Args:
        num_layers (int): Number of layers.
        layer_cfg (dict): kwargs of :class:`DeformableEncoderLayer`.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, num_layers: int, layer_cfg: ConfigType,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        self.num_layers = num_layers
        self.layer_cfg = layer_cfg
        self.layers = ModuleList(
            [DeformableEncoderLayer(**copy.deepcopy(dict(layer_cfg))) for _ in range(num_layers)])
        self.embed_dims = self.layers[0].embed_dims

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor,
                valid_ratios: Tensor) -> Tensor:
        """
        Args:
            query (Tensor): (bs, num_value, embed_dims), flattened multi-level features.
            query_pos (Tensor): (bs, num_value, embed_dims).
            key_padding_mask (Tensor): (bs, num_value) bool, True = padding.
            spatial_shapes (Tensor): (num_levels, 2) as (h, w).
            level_start_index (Tensor): (num_levels,).
            valid_ratios (Tensor): (bs, num_levels, 2) as (w, h).

        Returns:
            Tensor: (bs, num_value, embed_dims), the memory.
        """
        reference_points = encoder_reference_points(spatial_shapes, valid_ratios)
        for layer in self.layers:
            query = layer(query, query_pos=query_pos, key_padding_mask=key_padding_mask,
                          reference_points=reference_points, spatial_shapes=spatial_shapes,
                          level_start_index=level_start_index)
        return query
