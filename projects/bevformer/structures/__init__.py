"""Data structures shared by the data pipeline, the models and the metrics."""
from .data_sample import Det3DDataSample

__all__ = ['Det3DDataSample']
