"""Metrics. Importing registers ``NuScenesMetric`` in mmdet's METRICS."""
from .nuscenes_metric import NuScenesMetric, default_attribute, predictions_to_submission

__all__ = ['NuScenesMetric', 'default_attribute', 'predictions_to_submission']
