"""nuScenes multi-view temporal data: dataset, transforms, samplers (registered on import).

Runtime only: the info converter is ``tools/dataset_converters/nuscenes_converter.py`` and the
synthetic dataroot generator ``projects/bevformer/synthetic``.
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
