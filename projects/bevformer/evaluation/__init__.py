"""Metrics. Importing registers ``NuScenesMetric`` and ``BEVSegMetric`` in mmdet's METRICS."""
from .bev_seg_metric import BEVSegMetric, iou_counts
from .nuscenes_metric import NuScenesMetric, default_attribute, predictions_to_submission

__all__ = [
    'BEVSegMetric', 'iou_counts', 'NuScenesMetric', 'default_attribute',
    'predictions_to_submission'
]
