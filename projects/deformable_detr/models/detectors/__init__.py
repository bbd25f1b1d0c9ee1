"""2D detectors."""
from .deformable_detr_2d import DeformableDETR2D

__all__ = ['DeformableDETR2D']
