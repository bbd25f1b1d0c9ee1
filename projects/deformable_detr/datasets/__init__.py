"""2D datasets: the synthetic COCO-format shapes generator and its dataset class."""
from .synthetic_coco import SHAPE_CLASSES, generate_synthetic_coco, make_synthetic_image
from .synthetic_coco_dataset import SyntheticCocoDataset

__all__ = ['SHAPE_CLASSES', 'generate_synthetic_coco', 'make_synthetic_image',
           'SyntheticCocoDataset']
