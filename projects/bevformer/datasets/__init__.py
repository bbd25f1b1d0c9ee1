"""nuScenes multi-view temporal data: dataset, transforms, samplers (registered on import).

(``synthetic_nuscenes`` and ``nuscenes_converter`` are plain modules used by tools; they are
imported where needed.)
"""
from ..constants import CAMERAS, CLASSES
from .nuscenes_dataset import InfoFormatError, NuScenesBEVDataset
from .samplers import ContiguousVideoSampler, contiguous_blocks
from .transforms import (FilterBEVInstances, LoadBEVSegLabels, LoadMultiViewImages, MultiViewCrop,
                         MultiViewPhotoMetricDistortion, MultiViewResize, PackBEVInputs)

__all__ = [
    'NuScenesBEVDataset', 'InfoFormatError', 'CLASSES', 'CAMERAS', 'ContiguousVideoSampler',
    'contiguous_blocks', 'LoadMultiViewImages', 'MultiViewPhotoMetricDistortion',
    'MultiViewResize', 'MultiViewCrop', 'FilterBEVInstances', 'PackBEVInputs', 'LoadBEVSegLabels'
]
