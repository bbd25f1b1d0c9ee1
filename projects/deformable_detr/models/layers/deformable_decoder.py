"""Deformable DETR decoder: query self-attention, deformable cross-attention into the
encoder memory, and optional iterative box refinement between layers."""
import copy
from typing import Optional, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn

from .deformable_encoder import _batch_first_cfg
from .ms_deform_attn import MSDeformableAttention
from .reference_points import reference_points_per_level


@MODELS.register_module()
class DeformableDecoderLayer(BaseModule):
    """Post-norm decoder layer: self-attention, norm, deformable cross-attention, norm,
    FFN, norm.

    Args:
        self_attn_cfg (dict): kwargs of mmcv's ``MultiheadAttention``.
        cross_attn_cfg (dict): kwargs of :class:`MSDeformableAttention`.
        ffn_cfg (dict): kwargs of mmcv's ``FFN``.
        norm_cfg (dict): Normalisation layer config. Defaults to LayerNorm.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 self_attn_cfg: OptConfigType = None,
                 cross_attn_cfg: OptConfigType = None,
                 ffn_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(type='LN'),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        self.self_attn_cfg = _batch_first_cfg(
            self_attn_cfg, dict(embed_dims=256, num_heads=8, dropout=0.1),
            'DeformableDecoderLayer.self_attn_cfg')
        self.cross_attn_cfg = _batch_first_cfg(cross_attn_cfg, dict(embed_dims=256),
                                               'DeformableDecoderLayer.cross_attn_cfg')
        self.ffn_cfg = copy.deepcopy(
            dict(embed_dims=256, feedforward_channels=1024, ffn_drop=0.1)
            if ffn_cfg is None else dict(ffn_cfg))
        self.self_attn = MultiheadAttention(**self.self_attn_cfg)
        self.cross_attn = MSDeformableAttention(**self.cross_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = FFN(**self.ffn_cfg)
        self.norms = ModuleList(
            [build_norm_layer(norm_cfg, self.embed_dims)[1] for _ in range(3)])

    def forward(self, query: Tensor, value: Tensor, query_pos: Tensor,
                key_padding_mask: Optional[Tensor], reference_points: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor,
                self_attn_mask: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            query (Tensor): (bs, num_query, embed_dims).
            value (Tensor): (bs, num_value, embed_dims), the encoder memory.
            query_pos (Tensor): (bs, num_query, embed_dims).
            key_padding_mask (Tensor, optional): (bs, num_value) bool, True = padding.
            reference_points (Tensor): (bs, num_query, num_levels, 2 or 4).
            spatial_shapes (Tensor): (num_levels, 2) as (h, w).
            level_start_index (Tensor): (num_levels,).
            self_attn_mask (Tensor, optional): (num_query, num_query) bool, True = blocked.

        Returns:
            Tensor: (bs, num_query, embed_dims).
        """
        query = self._self_attention(query, query_pos, self_attn_mask)
        query = self.norms[0](query)
        query = self.cross_attn(query, value=value, query_pos=query_pos,
                                key_padding_mask=key_padding_mask,
                                reference_points=reference_points,
                                spatial_shapes=spatial_shapes,
                                level_start_index=level_start_index)
        query = self.norms[1](query)
        query = self.ffn(query)
        return self.norms[2](query)

    def _self_attention(self, query: Tensor, query_pos: Optional[Tensor],
                        attn_mask: Optional[Tensor]) -> Tensor:
        """mmcv's ``MultiheadAttention.forward`` (query = key = query + pos, value = query,
        residual, dropout) without the attention weights it discards.

        ``need_weights=False`` lets torch run one fused ``scaled_dot_product_attention``
        instead of bmm + softmax + bmm + the head-averaged weights (the decoder's 900-query
        self-attention was 2/3 of the head's CPU time); same result up to float rounding.

        Args:
            query (Tensor): (bs, num_query, embed_dims), also the residual identity.
            query_pos (Tensor, optional): (bs, num_query, embed_dims).
            attn_mask (Tensor, optional): (num_query, num_query) bool, True = blocked.

        Returns:
            Tensor: (bs, num_query, embed_dims).
        """
        mha = self.self_attn
        q = query if query_pos is None else query + query_pos
        q_t, v_t = q.transpose(0, 1), query.transpose(0, 1)  # torch's MHA: (num_query, bs, C)
        out = mha.attn(q_t, q_t, v_t, attn_mask=attn_mask, need_weights=False)[0]
        return query + mha.dropout_layer(mha.proj_drop(out.transpose(0, 1)))


def refine_reference_points(reference_points: Tensor, delta: Tensor) -> Tensor:
    """Apply a predicted correction to reference points in inverse-sigmoid space.

    Args:
        reference_points (Tensor): (bs, num_query, 2) points or (bs, num_query, 4) boxes,
            in [0, 1].
        delta (Tensor): (bs, num_query, 4), the regression branch output.

    Returns:
        Tensor: (bs, num_query, 4) boxes (cx, cy, w, h) in [0, 1]. A 2-d point gains the
        predicted size; a box is shifted and rescaled.
    """
    dim = reference_points.shape[-1]
    if dim == 4:
        return (delta + inverse_sigmoid(reference_points)).sigmoid()
    if dim != 2:
        raise ValueError('reference_points must be (bs, num_query, 2 or 4), '
                         f'got {tuple(reference_points.shape)}')
    centre = delta[..., :2] + inverse_sigmoid(reference_points)
    return torch.cat([centre, delta[..., 2:]], dim=-1).sigmoid()


@MODELS.register_module()
class DeformableDecoder(BaseModule):
    """A stack of :class:`DeformableDecoderLayer` with optional iterative refinement.

    The layer loop is :meth:`decode`; a subclass that reads its memory differently (e.g.
    BEVFormer's detection decoder over one BEV level with 3-D reference points) overrides
    :meth:`sampling_locations` and :meth:`refine` and keeps the loop.

    Args:
        num_layers (int): Number of layers.
        layer_cfg (dict): kwargs of :class:`DeformableDecoderLayer`.
        post_norm_cfg (dict, optional): Must be None (the layers end with a norm);
            accepted so mmdet's Deformable DETR configs build unchanged.
        return_intermediate (bool): Return every layer's output. Defaults to True.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_layers: int,
                 layer_cfg: ConfigType,
                 post_norm_cfg: OptConfigType = None,
                 return_intermediate: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if post_norm_cfg is not None:
            raise ValueError('DeformableDecoder has no post norm; got post_norm_cfg='
                             f'{post_norm_cfg}, expected None')
        self.num_layers = num_layers
        self.layer_cfg = layer_cfg
        self.return_intermediate = return_intermediate
        self.layers = ModuleList(
            [DeformableDecoderLayer(**copy.deepcopy(dict(layer_cfg))) for _ in range(num_layers)])
        self.embed_dims = self.layers[0].embed_dims

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                value: Tensor,
                key_padding_mask: Optional[Tensor],
                reference_points: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                valid_ratios: Tensor,
                reg_branches: Optional[nn.ModuleList] = None) -> Tuple[Tensor, Tensor]:
        """
        Args:
            query (Tensor): (bs, num_query, embed_dims).
            query_pos (Tensor): (bs, num_query, embed_dims).
            value (Tensor): (bs, num_value, embed_dims), the encoder memory.
            key_padding_mask (Tensor, optional): (bs, num_value) bool, True = padding.
            reference_points (Tensor): (bs, num_query, 2) points or (bs, num_query, 4)
                boxes, normalised by the valid image extent (two-stage gives boxes).
            spatial_shapes (Tensor): (num_levels, 2) as (h, w).
            level_start_index (Tensor): (num_levels,).
            valid_ratios (Tensor): (bs, num_levels, 2) as (w, h).
            reg_branches (nn.ModuleList, optional): one box-regression branch per layer;
                when given, each layer's prediction refines the reference points of the
                next (detached, as in the paper).

        Returns:
            tuple[Tensor, Tensor]: with ``return_intermediate`` the stacked outputs
            (num_layers, bs, num_query, embed_dims) and the reference points each layer
            produced (num_layers, bs, num_query, 2 or 4); otherwise the last of each.
        """
        return self.decode(query, query_pos, value, key_padding_mask, reference_points,
                           spatial_shapes, level_start_index, valid_ratios, reg_branches)

    def sampling_locations(self, reference_points: Tensor,
                           valid_ratios: Optional[Tensor]) -> Tensor:
        """The reference points handed to every layer's cross-attention.

        Args:
            reference_points (Tensor): (bs, num_query, 2 or 4), the decoder's reference.
            valid_ratios (Tensor, optional): (bs, num_levels, 2) as (w, h).

        Returns:
            Tensor: (bs, num_query, num_levels, 2 or 4) per-level points.
        """
        return reference_points_per_level(reference_points, valid_ratios)

    def refine(self, reference_points: Tensor, delta: Tensor) -> Tensor:
        """The next layer's reference points from a regression branch's output."""
        return refine_reference_points(reference_points, delta)

    def decode(self, query: Tensor, query_pos: Tensor, value: Tensor,
               key_padding_mask: Optional[Tensor], reference_points: Tensor,
               spatial_shapes: Tensor, level_start_index: Tensor,
               valid_ratios: Optional[Tensor],
               reg_branches: Optional[nn.ModuleList] = None) -> Tuple[Tensor, Tensor]:
        """The layer loop (arguments and returns as :meth:`forward`)."""
        if reg_branches is not None and len(reg_branches) < self.num_layers:
            raise ValueError(f'{type(self).__name__}: got {len(reg_branches)} reg_branches '
                             f'for {self.num_layers} layers')
        outputs, references = [], []
        for layer_id, layer in enumerate(self.layers):
            query = layer(query, value=value, query_pos=query_pos,
                          key_padding_mask=key_padding_mask,
                          reference_points=self.sampling_locations(reference_points,
                                                                   valid_ratios),
                          spatial_shapes=spatial_shapes, level_start_index=level_start_index)
            if reg_branches is not None:
                # no gradient through the reference points between layers (paper, sec. A.4)
                reference_points = self.refine(reference_points,
                                               reg_branches[layer_id](query)).detach()
            if self.return_intermediate:
                outputs.append(query)
                references.append(reference_points)
        if self.return_intermediate:
            return torch.stack(outputs), torch.stack(references)
        return query, reference_points
