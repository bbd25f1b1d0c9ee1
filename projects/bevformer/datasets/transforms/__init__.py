"""Multi-view transforms (registered in mmdet's TRANSFORMS on import)."""
from .bev_seg_labels import LoadBEVSegLabels
from .formatting import PackBEVInputs
from .geometric import MultiViewCrop, MultiViewResize
from .instances import FilterBEVInstances
from .loading import LoadMultiViewImages
from .photometric import MultiViewPhotoMetricDistortion

__all__ = [
    'LoadMultiViewImages', 'MultiViewPhotoMetricDistortion', 'MultiViewResize', 'MultiViewCrop',
    'FilterBEVInstances', 'PackBEVInputs', 'LoadBEVSegLabels'
]
