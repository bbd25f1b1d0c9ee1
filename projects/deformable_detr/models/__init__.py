"""Deformable attention, encoder / decoder and the 2D Deformable DETR detector.
Importing registers them into mmdet's MODELS."""
from .detectors import DeformableDETR2D
from .layers import (DeformableDecoder, DeformableDecoderLayer, DeformableEncoder,
                     DeformableEncoderLayer, MSDeformableAttention)

__all__ = [
    'MSDeformableAttention', 'DeformableEncoderLayer', 'DeformableEncoder',
    'DeformableDecoderLayer', 'DeformableDecoder', 'DeformableDETR2D'
]
