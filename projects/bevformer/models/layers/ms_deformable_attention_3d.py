"""Deformable attention from BEV queries to one camera's multi-level features via pillar anchors."""
from mmengine.model import BaseModule, constant_init, xavier_init
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from projects.deformable_detr.ops import softmax_last_dim
from .msda_op import multi_scale_deformable_attn
from .offset_init import directional_offset_bias


@MODELS.register_module()
class MSDeformableAttention3D(BaseModule):
    """Multi-scale deformable attention whose reference is a set of D projected pillar anchors.

    The ``num_points`` sampling points of every head and level are split evenly over the D
    anchors (``num_points // D`` around each), all weighted by one softmax over levels x points.
    There is no output projection and no residual: :class:`SpatialCrossAttention` averages the
    cameras first and projects once.

    Args:
        embed_dims (int): channels C. Default 256.
        num_heads (int): attention heads (must divide C). Default 8.
        num_levels (int): feature levels. Default 4.
        num_points (int): sampling points per head and level, a multiple of D. Default 8.
        init_cfg: mmengine init config (``init_weights`` does the standard init).
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 8,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if embed_dims % num_heads != 0:
            raise ValueError(f'MSDeformableAttention3D: embed_dims ({embed_dims}) must be '
                             f'divisible by num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.init_weights()

    def init_weights(self) -> None:
        """Zero offset weights with directional biases, uniform attention, xavier value proj."""
        constant_init(self.sampling_offsets, 0.)
        self.sampling_offsets.bias.data.copy_(
            directional_offset_bias(self.num_heads, self.num_levels, self.num_points))
        constant_init(self.attention_weights, val=0., bias=0.)
        xavier_init(self.value_proj, distribution='uniform', bias=0.)

    def forward(self, query: Tensor, value: Tensor, reference_points: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor) -> Tensor:
        """
        Args:
            query (Tensor): (B, num_query, C), B = bs * num_cams in spatial cross-attention.
            value (Tensor): (B, num_value, C) flattened multi-level features.
            reference_points (Tensor): (B, num_query, D, 2) normalized (x, y) of the anchors.
            spatial_shapes (Tensor): (num_levels, 2) long (H, W); the H*W must sum to num_value
                (checked once by the encoder, not here: it would sync the device per layer).
            level_start_index (Tensor): (num_levels,) long.

        Returns:
            Tensor: (B, num_query, C), not projected.
        """
        batch, num_query, channels = query.shape
        num_value = value.shape[1]
        if value.shape != (batch, num_value, channels):
            raise ValueError(f'MSDeformableAttention3D: value must be ({batch}, num_value, '
                             f'{channels}), got {tuple(value.shape)}')
        if spatial_shapes.shape != (self.num_levels, 2):
            raise ValueError(f'MSDeformableAttention3D: spatial_shapes must be '
                             f'({self.num_levels}, 2), got {tuple(spatial_shapes.shape)}')
        if (reference_points.dim() != 4 or reference_points.shape[:2] != (batch, num_query)
                or reference_points.shape[-1] != 2):
            raise ValueError(f'MSDeformableAttention3D: reference_points must be ({batch}, '
                             f'{num_query}, D, 2), got {tuple(reference_points.shape)}')
        num_anchors = reference_points.shape[2]
        if self.num_points % num_anchors != 0:
            raise ValueError(f'MSDeformableAttention3D: num_points ({self.num_points}) must be '
                             f'a multiple of the number of pillar anchors ({num_anchors})')
        heads, levels, points = self.num_heads, self.num_levels, self.num_points

        value = self.value_proj(value).view(batch, num_value, heads, channels // heads)
        offsets = self.sampling_offsets(query).view(batch, num_query, heads, levels, points, 2)
        weights = self.attention_weights(query).view(batch, num_query, heads, levels * points)
        weights = softmax_last_dim(weights).view(batch, num_query, heads, levels, points)

        # Offsets in cells of each level -> normalized; point index = p * D + d (anchor d).
        # Locations stay fp32 under autocast: fp16 would round them to ~1e-3 of the image.
        normalizer = spatial_shapes.flip(-1).float()  # (levels, 2) as (W, H)
        offsets = offsets.float() / normalizer[None, None, None, :, None, :]
        offsets = offsets.view(batch, num_query, heads, levels, points // num_anchors,
                               num_anchors, 2)
        locations = reference_points[:, :, None, None, None, :, :].float() + offsets
        locations = locations.view(batch, num_query, heads, levels, points, 2)
        return multi_scale_deformable_attn(value, spatial_shapes, level_start_index, locations,
                                           weights)
