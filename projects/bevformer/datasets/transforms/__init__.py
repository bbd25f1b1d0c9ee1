"""Multi-view transforms (registered in mmdet's TRANSFORMS on import)."""
from .bev_seg_labels import LoadBEVSegLabels
from .formatting import PackBEVInputs
from .geometric import MultiViewCrop, MultiViewPad, MultiViewResize
from .instances import FilterBEVInstances
from .loading import LoadMultiViewImages
from .photometric import MultiViewNormalize, MultiViewPhotoMetricDistortion

__all__ = [
    'LoadMultiViewImages', 'MultiViewPhotoMetricDistortion', 'MultiViewResize', 'MultiViewCrop',
    'MultiViewNormalize', 'MultiViewPad', 'FilterBEVInstances', 'PackBEVInputs', 'LoadBEVSegLabels'
]
