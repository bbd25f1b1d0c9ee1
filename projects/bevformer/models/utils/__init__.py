"""Small model utilities."""
from .grid_mask import GridMask

__all__ = ['GridMask']
