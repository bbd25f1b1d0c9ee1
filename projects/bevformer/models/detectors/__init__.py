"""Detectors."""
from .bevformer import BEVFormer
from .perspective_pretrainer import PerspectivePretrainer

__all__ = ['BEVFormer', 'PerspectivePretrainer']
