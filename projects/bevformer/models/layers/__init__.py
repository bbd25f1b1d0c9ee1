"""BEVFormer BEV encoder layers (registered into mmdet's MODELS on import)."""
from .bev_encoder import BEVFormerEncoder
from .bev_encoder_layer import BEVFormerEncoderLayer
from .ms_deformable_attention_3d import MSDeformableAttention3D
from .msda_op import multi_scale_deformable_attn
from .spatial_cross_attention import SpatialCrossAttention
from .temporal_self_attention import TemporalSelfAttention

__all__ = [
    'BEVFormerEncoder', 'BEVFormerEncoderLayer', 'MSDeformableAttention3D',
    'SpatialCrossAttention', 'TemporalSelfAttention', 'multi_scale_deformable_attn'
]
