"""Detection decoder over a BEV feature map (BEVFormer's ``DetectionTransformerDecoder``).

Object queries attend to each other, then sample the BEV map around their (x, y)
reference point with single-level deformable attention. With regression branches, each
layer moves the 3-D reference point (x, y, z in [0, 1] of ``pc_range``) for the next.

BEV layout contract: ``value`` is ``(bs, bev_h * bev_w, C)`` flattened row-major from a
``(bev_h, bev_w)`` grid whose column index runs along LiDAR x and row index along LiDAR
y, i.e. cell ``r * bev_w + c`` is centred at
``x = x_min + (c + 0.5) * (x_max - x_min) / bev_w``,
``y = y_min + (r + 0.5) * (y_max - y_min) / bev_h`` (the BEVFormer encoder's layout).
A normalised reference point (x, y) therefore samples column x * bev_w, row y * bev_h.

The layer loop is the Deformable DETR decoder's (``DeformableDecoder.decode``); this class
only says where a layer samples (the (x, y) of its 3-D reference point) and how a layer's
regression moves that point. The state-dict keys are ``layers.<i>.*`` as in the original's
``DetectionTransformerDecoder`` (see ``models/official.py``).
"""
from typing import Optional, Tuple

import torch
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from torch import Tensor, nn

from projects.deformable_detr.models.layers import DeformableDecoder


def refine_reference_points_3d(reference_points: Tensor, delta: Tensor) -> Tensor:
    """Move 3-D reference points by a box-code prediction in inverse-sigmoid space.

    Args:
        reference_points (Tensor): (bs, num_query, 3) (x, y, z) in [0, 1].
        delta (Tensor): (bs, num_query, code_size) regression output; dims 0, 1 shift
            (x, y) and dim 4 shifts z (the code layout of ``box_coding``).

    Returns:
        Tensor: (bs, num_query, 3) refined points in [0, 1].
    """
    shift = torch.cat([delta[..., 0:2], delta[..., 4:5]], dim=-1)
    return (inverse_sigmoid(reference_points) + shift).sigmoid()


@MODELS.register_module()
class BEVDetectionDecoder(DeformableDecoder):
    """A stack of post-norm deformable decoder layers reading one BEV level.

    Args:
        num_layers (int): number of layers (BEVFormer: 6).
        layer_cfg (dict): kwargs of ``DeformableDecoderLayer`` (self_attn_cfg,
            cross_attn_cfg with ``num_levels=1``, ffn_cfg).
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self, num_layers: int, layer_cfg: ConfigType,
                 init_cfg: OptMultiConfig = None) -> None:
        levels = dict(layer_cfg).get('cross_attn_cfg', {}).get('num_levels', 4)
        if levels != 1:
            raise ValueError('BEVDetectionDecoder: layer_cfg.cross_attn_cfg.num_levels must '
                             f'be 1 (one BEV map), got {levels}')
        super().__init__(num_layers, layer_cfg, return_intermediate=True, init_cfg=init_cfg)

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                value: Tensor,
                reference_points: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                reg_branches: Optional[nn.ModuleList] = None) -> Tuple[Tensor, Tensor]:
        """Run all layers, returning every layer's output.

        Args:
            query (Tensor): (bs, num_query, embed_dims).
            query_pos (Tensor): (bs, num_query, embed_dims).
            value (Tensor): (bs, bev_h * bev_w, embed_dims), the BEV feature.
            reference_points (Tensor): (bs, num_query, 3) in [0, 1].
            spatial_shapes (Tensor): (1, 2) long, ``[[bev_h, bev_w]]``.
            level_start_index (Tensor): (1,) long, ``[0]``.
            reg_branches (nn.ModuleList, optional): one branch per layer mapping
                (.., embed_dims) -> (.., code_size); when given, each layer refines the
                reference points of the next (detached between layers).

        Returns:
            tuple[Tensor, Tensor]: outputs (num_layers, bs, num_query, embed_dims) and
            the reference points after each layer (num_layers, bs, num_query, 3).
        """
        if reference_points.dim() != 3 or reference_points.shape[-1] != 3:
            raise ValueError('BEVDetectionDecoder: reference_points must be (bs, num_query, '
                             f'3), got {tuple(reference_points.shape)}')
        return self.decode(query, query_pos, value, None, reference_points, spatial_shapes,
                           level_start_index, None, reg_branches)

    def sampling_locations(self, reference_points: Tensor,
                           valid_ratios: Optional[Tensor]) -> Tensor:
        """Only (x, y) locate the sample on the single BEV level: (bs, num_query, 1, 2)."""
        return reference_points[..., None, :2]

    def refine(self, reference_points: Tensor, delta: Tensor) -> Tensor:
        return refine_reference_points_3d(reference_points, delta)
