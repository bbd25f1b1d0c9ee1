"""Detectors."""
from .bevformer import BEVFormer

__all__ = ['BEVFormer']
