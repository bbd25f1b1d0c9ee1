"""Assigner, match costs and box coder of the BEVFormer detection head."""
from .hungarian_assigner_3d import HungarianAssigner3D
from .match_costs import BBox3DL1Cost
from .nms_free_coder import NMSFreeCoder

__all__ = ['BBox3DL1Cost', 'HungarianAssigner3D', 'NMSFreeCoder']
