"""Ops: multi-scale deformable attention (mmcv's CUDA kernel on CUDA, our own
PyTorch op elsewhere) and Soft-NMS for axis-aligned and rotated boxes."""
from .multi_scale_deform_attn import multi_scale_deformable_attn
from .nms import soft_nms

__all__ = ['multi_scale_deformable_attn', 'soft_nms']
