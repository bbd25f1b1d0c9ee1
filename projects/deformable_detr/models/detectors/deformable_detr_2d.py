"""Deformable DETR (2D) built from this project's deformable encoder and decoder.

Everything except the transformer layers is mmdet's ``DeformableDETR`` (feature
flattening, two-stage proposals, the head and its losses); the parameter names are the
same, so mmdet checkpoints load strictly.
"""
from typing import Optional

import torch
from mmdet.models.detectors import DeformableDETR
from mmdet.models.layers import SinePositionalEncoding
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..layers import DeformableDecoder, DeformableEncoder, MSDeformableAttention


@MODELS.register_module()
class DeformableDETR2D(DeformableDETR):
    """mmdet's ``DeformableDETR`` with :class:`DeformableEncoder` and
    :class:`DeformableDecoder`. Takes exactly the arguments of mmdet's class
    (``with_box_refine``, ``as_two_stage``, ``num_feature_levels``, ...)."""

    def _init_layers(self) -> None:
        """Build the positional encoding, encoder, decoder and the embeddings/projections
        that sit between them (same names and shapes as mmdet's)."""
        self.positional_encoding = SinePositionalEncoding(**self.positional_encoding)
        self.encoder = DeformableEncoder(**self.encoder)
        self.decoder = DeformableDecoder(**self.decoder)
        self.embed_dims = self.encoder.embed_dims
        if self.positional_encoding.num_feats * 2 != self.embed_dims:
            raise ValueError('positional_encoding.num_feats * 2 must equal embed_dims '
                             f'{self.embed_dims}, got num_feats='
                             f'{self.positional_encoding.num_feats}')
        if not self.as_two_stage:
            # query content and query position, split in pre_decoder
            self.query_embedding = nn.Embedding(self.num_queries, self.embed_dims * 2)
        self.level_embed = nn.Parameter(torch.empty(self.num_feature_levels, self.embed_dims))
        if self.as_two_stage:
            self.memory_trans_fc = nn.Linear(self.embed_dims, self.embed_dims)
            self.memory_trans_norm = nn.LayerNorm(self.embed_dims)
            self.pos_trans_fc = nn.Linear(self.embed_dims * 2, self.embed_dims * 2)
            self.pos_trans_norm = nn.LayerNorm(self.embed_dims * 2)
        else:
            self.reference_points_fc = nn.Linear(self.embed_dims, 2)

    def init_weights(self) -> None:
        """mmdet's initialisation, then the paper's for our attention modules (mmdet's
        only re-initialises mmcv's attention class after its blanket xavier pass)."""
        super().init_weights()
        for module in self.modules():
            if isinstance(module, MSDeformableAttention):
                module.init_weights()

    def get_proposal_pos_embed(self, proposals: Tensor, num_pos_feats: Optional[int] = None,
                               temperature: int = 10000) -> Tensor:
        """mmdet's sine embedding of the two-stage proposals, sized to ``embed_dims``.

        mmdet fixes 128 features per coordinate, which only fits embed_dims=256; here the
        default is embed_dims // 2, identical at 256 and correct for smaller models.

        Args:
            proposals (Tensor): (bs, num_query, 4) unnormalised (cx, cy, w, h).

        Returns:
            Tensor: (bs, num_query, 4 * num_pos_feats) = (bs, num_query, 2 * embed_dims).
        """
        if num_pos_feats is None:
            num_pos_feats = self.embed_dims // 2
        return DeformableDETR.get_proposal_pos_embed(proposals, num_pos_feats, temperature)
