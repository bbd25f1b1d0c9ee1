"""Task heads on the BEV feature B_t (3D detection, BEV map segmentation) and the perspective
head on the image features."""
from .base_bev_head import BaseBEVHead
from .bev_seg_head import BEVSegHead
from .bev_detection_decoder import BEVDetectionDecoder, refine_reference_points_3d
from .bev_nms import bev_nms
from .bev_proposals import BEVHeatmapQueries, BEVProposals
from .bevformer_head import BEVFormerHead
from .perspective_head import PerspectiveHead

__all__ = [
    'BaseBEVHead', 'BEVHeatmapQueries', 'BEVProposals', 'BEVSegHead', 'BEVDetectionDecoder', 'BEVFormerHead', 'bev_nms',
    'refine_reference_points_3d', 'PerspectiveHead'
]
