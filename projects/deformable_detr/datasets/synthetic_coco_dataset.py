"""mmdet's ``CocoDataset`` with the class names of the synthetic shapes dataset."""
from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .synthetic_coco import SHAPE_CLASSES


@DATASETS.register_module()
class SyntheticCocoDataset(CocoDataset):
    """The dataset written by :func:`generate_synthetic_coco` (COCO json + images).

    Only the metainfo differs from ``CocoDataset``: the classes are the shape names, in
    category-id order.
    """

    METAINFO = dict(classes=SHAPE_CLASSES,
                    palette=[(220, 20, 60), (0, 130, 200), (60, 180, 75)])
