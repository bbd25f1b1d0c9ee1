"""Per-class IoU and mIoU of BEV map segmentation, from per-sample intersection / union counts.

Each sample contributes only two (num_classes,) integer vectors, so the results gathered from
all ranks are small and summing them gives exactly the single-process IoU (dataset-level
IoU = sum of intersections / sum of unions, not a mean of per-sample IoUs).
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from terminaltables import AsciiTable


def _field(sample, key: str):
    value = sample.get(key) if isinstance(sample, dict) else getattr(sample, key, None)
    if value is None:
        # mmengine hands the metric data samples as dicts (to_dict: metainfo flattened in)
        token = sample.get('token', '?') if isinstance(sample, dict) else \
            sample.metainfo.get('token', '?')
        raise KeyError(f'BEVSegMetric: sample {token} has no {key!r}')
    return torch.as_tensor(value).cpu().bool()


def iou_counts(pred: torch.Tensor, gt: torch.Tensor) -> Dict[str, np.ndarray]:
    """Intersection and union cell counts per class.

    Args:
        pred (Tensor): (K, H, W) bool.
        gt (Tensor): (K, H, W) bool.

    Returns:
        dict: ``intersection``, ``union``: (K,) int64.
    """
    if pred.shape != gt.shape:
        raise ValueError(f'BEVSegMetric: prediction {tuple(pred.shape)} and ground truth '
                         f'{tuple(gt.shape)} differ in shape (num_classes, H, W)')
    return dict(intersection=(pred & gt).flatten(1).sum(1).numpy().astype(np.int64),
                union=(pred | gt).flatten(1).sum(1).numpy().astype(np.int64))


@METRICS.register_module()
class BEVSegMetric(BaseMetric):
    """IoU per class and mIoU of ``pred_bev_seg`` against ``gt_bev_seg``.

    Args:
        classes (sequence of str): class names, in mask channel order.
        pred_key (str): data-sample field of the predicted masks (num_classes, H, W).
        gt_key (str): data-sample field of the label masks (num_classes, H, W).
        collect_device (str): ``'cpu'`` or ``'gpu'``, where results are gathered.
        prefix (str, optional): metric name prefix (default ``'bev_seg'``).

    Metrics: ``<prefix>/IoU_<class>`` and ``<prefix>/mIoU`` (classes that never occur in
    prediction or ground truth have no IoU and are left out of the mean).
    """

    default_prefix: Optional[str] = 'bev_seg'

    def __init__(self,
                 classes: Sequence[str] = ('drivable_area', 'ped_crossing', 'walkway',
                                           'divider'),
                 pred_key: str = 'pred_bev_seg',
                 gt_key: str = 'gt_bev_seg',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.classes = tuple(classes)
        self.pred_key = pred_key
        self.gt_key = gt_key

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            pred, gt = _field(sample, self.pred_key), _field(sample, self.gt_key)
            if pred.shape[0] != len(self.classes):
                raise ValueError(f'BEVSegMetric: {self.pred_key} has {pred.shape[0]} channels, '
                                 f'expected {len(self.classes)} classes {self.classes}')
            self.results.append(iou_counts(pred, gt))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError('BEVSegMetric: no results to evaluate')
        inter = np.sum([r['intersection'] for r in results], axis=0)
        union = np.sum([r['union'] for r in results], axis=0)
        metrics = {}
        rows = [['class', 'IoU', 'intersection', 'union']]
        ious = []
        for k, name in enumerate(self.classes):
            iou = inter[k] / union[k] if union[k] > 0 else float('nan')
            rows.append([name, f'{iou:.4f}', str(inter[k]), str(union[k])])
            if union[k] > 0:
                metrics[f'IoU_{name}'] = float(iou)
                ious.append(iou)
        metrics['mIoU'] = float(np.mean(ious)) if ious else float('nan')
        rows.append(['mIoU', f'{metrics["mIoU"]:.4f}', '', ''])
        print_log('\n' + AsciiTable(rows).table, logger='current')
        return metrics
