"""3D detection heads on the BEV feature B_t."""
from .bev_detection_decoder import BEVDetectionDecoder, refine_reference_points_3d
from .bev_nms import bev_nms
from .bevformer_head import BEVFormerHead

__all__ = ['BEVDetectionDecoder', 'BEVFormerHead', 'bev_nms', 'refine_reference_points_3d']
