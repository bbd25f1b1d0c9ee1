"""Data preprocessors (registered in mmdet's MODELS on import)."""
from .bev_data_preprocessor import BEVDataPreprocessor

__all__ = ['BEVDataPreprocessor']
