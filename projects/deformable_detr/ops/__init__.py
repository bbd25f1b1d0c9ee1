"""Ops: multi-scale deformable attention (mmcv's CUDA kernel on CUDA, our own
PyTorch op elsewhere), Soft-NMS for axis-aligned and rotated boxes, and a softmax
over a short last dimension."""
from .multi_scale_deform_attn import multi_scale_deformable_attn
from .nms import soft_nms
from .softmax import softmax_last_dim

__all__ = ['multi_scale_deformable_attn', 'soft_nms', 'softmax_last_dim']
