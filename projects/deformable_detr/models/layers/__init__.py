"""Multi-scale deformable attention and the deformable encoder / decoder."""
from .deformable_decoder import (DeformableDecoder, DeformableDecoderLayer,
                                 refine_reference_points)
from .deformable_encoder import DeformableEncoder, DeformableEncoderLayer
from .ms_deform_attn import MSDeformableAttention
from .reference_points import (deformable_sampling_locations, encoder_reference_points,
                               reference_points_per_level)

__all__ = [
    'MSDeformableAttention', 'DeformableEncoderLayer', 'DeformableEncoder',
    'DeformableDecoderLayer', 'DeformableDecoder', 'refine_reference_points',
    'deformable_sampling_locations', 'encoder_reference_points', 'reference_points_per_level'
]
