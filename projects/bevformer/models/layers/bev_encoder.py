"""The BEVFormer BEV encoder: camera features (+ previous BEV) -> B_t (bs, bev_h * bev_w, C)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule, initialize, xavier_init
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, OptMultiConfig
from ...geometry.bev import (bev_grid_2d, check_pc_range, pillar_points_3d,
                             project_points_to_cameras)
from ...geometry.ego_motion import (CAN_BUS_DIM, align_prev_bev, can_bus_bev_shift,
                                    can_bus_deltas, rotate_bev_about_pixel)
from ..legacy import EncoderLegacy
from .bev_encoder_layer import BEVFormerEncoderLayer
from .ms_deformable_attention_3d import MSDeformableAttention3D
from .spatial_cross_attention import SpatialCrossAttention
from .temporal_self_attention import TemporalSelfAttention

ShapeLike = Union[Sequence[int], Tensor]


@MODELS.register_module()
class BEVFormerEncoder(BaseModule):
    """Spatio-temporal BEV transformer producing the BEV features B_t.

    Learned BEV queries (+ the can_bus MLP embedding) are refined by ``num_layers``
    :class:`BEVFormerEncoderLayer` s: temporal self-attention with the previous BEV resampled
    into the current frame (:func:`align_prev_bev`), and spatial cross-attention to the camera
    features (plus learned camera and level embeddings) through pillar anchors projected with
    ``lidar2img``. Grid conventions: ``projects/bevformer/geometry/bev.py`` (columns along x,
    rows along y, index ``row * bev_w + col``).

    Args:
        bev_h (int), bev_w (int): BEV grid size (rows along y, columns along x).
        pc_range (sequence of 6 floats): BEV range (x_min, y_min, z_min, x_max, y_max, z_max).
        num_points_in_pillar (int): pillar anchors D. Default 4.
        num_cams (int): cameras. Default 6.
        num_feature_levels (int): feature levels fed to spatial cross-attention. Default 4.
        embed_dims (int): channels C. Default 256.
        num_layers (int): encoder layers. Default 6.
        layer_cfg (dict, optional): kwargs of :class:`BEVFormerEncoderLayer`. ``embed_dims``,
            ``num_cams`` and ``num_levels`` are filled in from the arguments above when absent.
        positional_encoding (dict, optional): BEV positional encoding config. Default mmdet's
            ``LearnedPositionalEncoding`` with ``C / 2`` features per axis.
        use_can_bus (bool): add ``can_bus_mlp(can_bus)`` to every BEV query. Default True.
        use_cams_embeds (bool): add a learned embedding per camera to its features.
        legacy (dict, optional): reproduce the original BEVFormer's arithmetic (``dict()``: all
            of its quirks; see ``models/legacy.py``). Default None: exact ego motion.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 bev_h: int,
                 bev_w: int,
                 pc_range: Sequence[float],
                 num_points_in_pillar: int = 4,
                 num_cams: int = 6,
                 num_feature_levels: int = 4,
                 embed_dims: int = 256,
                 num_layers: int = 6,
                 layer_cfg: OptConfigType = None,
                 positional_encoding: OptConfigType = None,
                 use_can_bus: bool = True,
                 use_cams_embeds: bool = True,
                 legacy: Optional[dict] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        self.bev_h = bev_h
        self.bev_w = bev_w
        self.pc_range = check_pc_range(pc_range)
        self.num_points_in_pillar = num_points_in_pillar
        self.num_cams = num_cams
        self.num_feature_levels = num_feature_levels
        self.embed_dims = embed_dims
        self.use_can_bus = use_can_bus
        self.use_cams_embeds = use_cams_embeds
        self.legacy = EncoderLegacy.build(legacy)

        self.bev_embedding = nn.Embedding(bev_h * bev_w, embed_dims)
        pos_cfg = dict(type='LearnedPositionalEncoding', num_feats=embed_dims // 2,
                       row_num_embed=bev_h, col_num_embed=bev_w)
        pos_cfg.update(positional_encoding or {})
        self.positional_encoding = MODELS.build(pos_cfg)
        self.level_embeds = nn.Parameter(torch.empty(num_feature_levels, embed_dims))
        self.cams_embeds = nn.Parameter(torch.empty(num_cams, embed_dims))
        self.can_bus_mlp = nn.Sequential(
            nn.Linear(CAN_BUS_DIM, embed_dims // 2), nn.ReLU(inplace=True),
            nn.Linear(embed_dims // 2, embed_dims), nn.ReLU(inplace=True),
            nn.LayerNorm(embed_dims))

        layer_cfg = _fill_layer_cfg(layer_cfg, embed_dims, num_cams, num_feature_levels)
        self.layers = nn.ModuleList(
            BEVFormerEncoderLayer(**layer_cfg) for _ in range(num_layers))
        self.num_layers = num_layers
        self.init_weights()

    def init_weights(self) -> None:
        """BEVFormer's init: xavier on every layer matrix, then the attentions' own init,
        normal camera / level embeddings, xavier can_bus MLP, uniform positional encoding."""
        for param in self.layers.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        for module in self.layers.modules():
            if isinstance(module, (TemporalSelfAttention, SpatialCrossAttention,
                                   MSDeformableAttention3D)):
                module.init_weights()
        nn.init.normal_(self.level_embeds)
        nn.init.normal_(self.cams_embeds)
        for module in self.can_bus_mlp:
            if isinstance(module, nn.Linear):
                xavier_init(module, distribution='uniform', bias=0.)
        pos = self.positional_encoding
        if getattr(pos, 'init_cfg', None):  # its own init (uniform for mmdet's), without the
            initialize(pos, pos.init_cfg)  # init-info log that a top-level init_weights dumps

    def forward(self,
                mlvl_feats: List[Tensor],
                lidar2img: Tensor,
                img_shape: ShapeLike,
                pad_shape: ShapeLike,
                can_bus: Optional[Tensor] = None,
                prev_bev: Optional[Tensor] = None,
                prev2cur: Optional[Tensor] = None,
                prev_valid: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            mlvl_feats (list[Tensor]): ``num_feature_levels`` tensors (bs, num_cams, C, H_l, W_l),
                computed on the padded images.
            lidar2img (Tensor): (bs, num_cams, 4, 4) LiDAR -> pixel of the fed images.
            img_shape: (H, W) of the valid (unpadded) images, or a (bs, 2) tensor.
            pad_shape: (H, W) of the padded images, or a (bs, 2) tensor.
            can_bus (Tensor, optional): (bs, 18) can_bus as :meth:`make_can_bus` makes it
                (translation / yaw as deltas); required when ``use_can_bus`` or in legacy mode
                (float64 preferred: legacy mode derives the rotation and shift from it).
            prev_bev (Tensor, optional): (bs, bev_h * bev_w, C) previous frame's B_t.
            prev2cur (Tensor, optional): (bs, 4, 4) previous LiDAR -> current LiDAR; required
                with ``prev_bev`` (except in legacy mode, which uses ``can_bus``).
            prev_valid (Tensor, optional): (bs,) bool, samples whose ``prev_bev`` is real (others
                use their own queries instead). Default: all, when ``prev_bev`` is given.

        Returns:
            Tensor: B_t (bs, bev_h * bev_w, C).
        """
        value, spatial_shapes, level_start_index = self._flatten_feats(mlvl_feats)
        bs = value.shape[0]
        device = value.device
        num_cells = self.bev_h * self.bev_w
        if lidar2img.shape != (bs, self.num_cams, 4, 4):
            raise ValueError(f'BEVFormerEncoder: lidar2img must be ({bs}, {self.num_cams}, 4, 4), '
                             f'got {tuple(lidar2img.shape)}')

        query = self.bev_embedding.weight[None].expand(bs, -1, -1)
        legacy = self.legacy
        if self.use_can_bus or legacy is not None:
            if can_bus is None or can_bus.shape != (bs, CAN_BUS_DIM):
                raise ValueError(f'BEVFormerEncoder: can_bus must be ({bs}, {CAN_BUS_DIM}) when '
                                 f'use_can_bus=True or in legacy mode, got '
                                 f'{None if can_bus is None else tuple(can_bus.shape)}')
        if self.use_can_bus:
            mlp_in = can_bus.to(device=device, dtype=self.bev_embedding.weight.dtype)
            query = query + self.can_bus_mlp(mlp_in)[:, None, :]
        pos_mask = torch.zeros((bs, self.bev_h, self.bev_w), dtype=torch.bool, device=device)
        query_pos = self.positional_encoding(pos_mask).flatten(2).transpose(1, 2)

        ref_2d = bev_grid_2d(self.bev_h, self.bev_w, bs, device)
        ref_3d = pillar_points_3d(self.bev_h, self.bev_w, self.num_points_in_pillar,
                                  self.pc_range, bs, device)
        if legacy is not None and legacy.pillar_mask_padded_shape:
            img_shape = pad_shape
        ref_cam, bev_mask = project_points_to_cameras(ref_3d, self.pc_range, lidar2img,
                                                      img_shape, pad_shape)
        cam_plan = SpatialCrossAttention.plan(ref_cam, bev_mask)  # shared by every layer
        bev_spatial_shapes = torch.tensor([[self.bev_h, self.bev_w]], device=device)
        bev_level_start_index = torch.zeros(1, dtype=torch.long, device=device)

        prev_ref_2d, tsa_current = None, None
        if legacy is None:
            prev_bev, prev_valid = self._align_prev(prev_bev, prev2cur, prev_valid, bs)
        else:
            prev_bev, prev_valid = self._legacy_prev(prev_bev, can_bus, prev_valid, bs)
            if legacy.use_shift:
                shift = can_bus_bev_shift(can_bus, self.bev_h, self.bev_w, self.pc_range)
                prev_ref_2d = ref_2d + shift.to(device)[:, None, None, :]
                if legacy.shift_current_queue:
                    ref_2d = prev_ref_2d
            if prev_bev is not None and legacy.tsa_value_from_initial_query:
                tsa_current = query
        for layer in self.layers:
            query = layer(query, query_pos, ref_2d, bev_spatial_shapes, bev_level_start_index,
                          value, cam_plan, spatial_shapes, level_start_index,
                          prev_bev=prev_bev, prev_valid=prev_valid, prev_ref_2d=prev_ref_2d,
                          tsa_current=tsa_current)
        assert query.shape == (bs, num_cells, self.embed_dims)
        return query

    def make_can_bus(self, cur_can_bus: Tensor, prev_can_bus: Tensor,
                     prev_valid: Tensor) -> Tensor:
        """The can_bus input of :meth:`forward` from two frames' absolute can_bus vectors.

        Args:
            cur_can_bus (Tensor): (bs, 18) absolute can_bus of the current frame (float64).
            prev_can_bus (Tensor): (bs, 18) absolute can_bus of the previous frame.
            prev_valid (Tensor): (bs,) bool, the previous frame exists in the same scene.

        Returns:
            Tensor: (bs, 18), translation and yaw as deltas (:func:`can_bus_deltas`); in legacy
            mode with the original's unwrapped yaw delta and orientation slots.
        """
        legacy = self.legacy
        out = can_bus_deltas(cur_can_bus, prev_can_bus, prev_valid,
                             wrap_yaw=legacy is None or not legacy.can_bus_unwrapped_yaw)
        if legacy is not None and legacy.can_bus_orientation_w:
            out[:, 3:7] = out[:, 3:4].clone()  # quaternion w in all four slots
        return out

    def _flatten_feats(self, mlvl_feats: List[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """Camera features + camera / level embeddings, flattened to (bs, num_cams, num_value, C);
        also the (num_levels, 2) spatial shapes and (num_levels,) level start indices."""
        if len(mlvl_feats) != self.num_feature_levels:
            raise ValueError(f'BEVFormerEncoder: expected {self.num_feature_levels} feature '
                             f'levels, got {len(mlvl_feats)}')
        flat, shapes = [], []
        bs = mlvl_feats[0].shape[0]
        for lvl, feat in enumerate(mlvl_feats):
            if feat.dim() != 5 or feat.shape[:3] != (bs, self.num_cams, self.embed_dims):
                raise ValueError(f'BEVFormerEncoder: mlvl_feats[{lvl}] must be ({bs}, '
                                 f'{self.num_cams}, {self.embed_dims}, H, W), got '
                                 f'{tuple(feat.shape)}')
            shapes.append(feat.shape[-2:])
            feat = feat.flatten(3).transpose(2, 3)  # (bs, num_cams, H*W, C)
            if self.use_cams_embeds:
                feat = feat + self.cams_embeds[None, :, None, :].to(feat.dtype)
            flat.append(feat + self.level_embeds[lvl].to(feat.dtype))
        device = mlvl_feats[0].device
        spatial_shapes = torch.tensor(shapes, dtype=torch.long, device=device)
        areas = spatial_shapes.prod(1)
        level_start_index = torch.cat((areas.new_zeros(1), areas.cumsum(0)[:-1]))
        return torch.cat(flat, dim=2), spatial_shapes, level_start_index

    def _prev_input(self, prev_bev: Optional[Tensor], prev_valid: Optional[Tensor],
                    bs: int) -> Tuple[bool, Optional[Tensor]]:
        """Check the previous-BEV inputs; returns (any sample has one, prev_valid as bool,
        or None when every sample has one: the layers then skip their per-sample select)."""
        if prev_bev is None:
            return False, None
        if prev_bev.shape != (bs, self.bev_h * self.bev_w, self.embed_dims):
            raise ValueError(f'BEVFormerEncoder: prev_bev must be ({bs}, '
                             f'{self.bev_h * self.bev_w}, {self.embed_dims}), got '
                             f'{tuple(prev_bev.shape)}')
        if prev_valid is None:
            return True, None
        if prev_valid.shape != (bs, ):
            raise ValueError(f'BEVFormerEncoder: prev_valid must be ({bs},), got '
                             f'{tuple(prev_valid.shape)}')
        prev_valid = prev_valid.to(device=prev_bev.device, dtype=torch.bool)
        if torch.onnx.is_in_onnx_export():  # the validity stays a graph input
            return True, prev_valid
        num_valid = int(prev_valid.sum())  # the frame's one host sync on the previous BEV
        return num_valid > 0, (None if num_valid == bs else prev_valid)

    def _align_prev(self, prev_bev: Optional[Tensor], prev2cur: Optional[Tensor],
                    prev_valid: Optional[Tensor],
                    bs: int) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """Previous BEV resampled into the current frame, or (None, None) if no sample has one."""
        any_prev, prev_valid = self._prev_input(prev_bev, prev_valid, bs)
        if not any_prev:
            return None, None
        if prev2cur is None:
            raise ValueError('BEVFormerEncoder: prev2cur (bs, 4, 4) is required with prev_bev')
        if prev_valid is not None:
            # Invalid samples may carry garbage poses; give them the identity before inverting.
            eye = torch.eye(4, dtype=prev2cur.dtype, device=prev2cur.device).expand_as(prev2cur)
            prev2cur = torch.where(prev_valid.to(prev2cur.device)[:, None, None], prev2cur, eye)
        aligned, _ = align_prev_bev(prev_bev, prev2cur, self.bev_h, self.bev_w, self.pc_range)
        return aligned, prev_valid

    def _legacy_prev(self, prev_bev: Optional[Tensor], can_bus: Tensor,
                     prev_valid: Optional[Tensor],
                     bs: int) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """The original's previous BEV: rotated about ``rotate_center`` by ``can_bus[:, 17]``
        (or used as it is with ``rotate_prev_bev=False``); (None, None) if no sample has one."""
        any_prev, prev_valid = self._prev_input(prev_bev, prev_valid, bs)
        if not any_prev:
            return None, None
        if self.legacy.rotate_prev_bev:
            prev_bev = rotate_bev_about_pixel(prev_bev, can_bus[:, 17], self.legacy.rotate_center,
                                              self.bev_h, self.bev_w)
        return prev_bev, prev_valid

def _fill_layer_cfg(layer_cfg: OptConfigType, embed_dims: int, num_cams: int,
                    num_levels: int) -> dict:
    """Copy of ``layer_cfg`` with the encoder-wide sizes filled in where absent."""
    cfg = dict(layer_cfg or {})
    self_attn = dict(cfg.get('self_attn_cfg') or {})
    self_attn.setdefault('embed_dims', embed_dims)
    cross_attn = dict(cfg.get('cross_attn_cfg') or {})
    cross_attn.setdefault('embed_dims', embed_dims)
    cross_attn.setdefault('num_cams', num_cams)
    deform = dict(cross_attn.get('deformable_attention') or {})
    deform.setdefault('embed_dims', embed_dims)
    deform.setdefault('num_levels', num_levels)
    cross_attn['deformable_attention'] = deform
    ffn = dict(cfg.get('ffn_cfg') or {})
    ffn.setdefault('embed_dims', embed_dims)
    cfg.update(self_attn_cfg=self_attn, cross_attn_cfg=cross_attn, ffn_cfg=ffn)
    return cfg
