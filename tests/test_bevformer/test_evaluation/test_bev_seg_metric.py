"""BEVSegMetric (evaluation/bev_seg_metric.py): IoU / mIoU by hand, results merged across ranks
equal one process, bad input is named."""
import pytest
import torch

import projects.bevformer  # noqa: F401
from mmdet.registry import METRICS
from projects.bevformer.evaluation import BEVSegMetric
from tests.test_bevformer.bev_seg_helpers import CLASSES


def test_miou_matches_hand_computation():
    metric = BEVSegMetric(classes=('a', 'b', 'c'))
    pred = torch.zeros(3, 2, 3, dtype=torch.bool)
    gt = torch.zeros(3, 2, 3, dtype=torch.uint8)
    pred[0, 0, :] = True          # a: pred 3 cells, gt 2 of them + 1 more
    gt[0, 0, :2] = 1
    gt[0, 1, 0] = 1               # a: I = 2, U = 4
    pred[1, 1, 1] = True          # b: pred 1, gt 0 -> I = 0, U = 1
    # c: never present -> no IoU, left out of the mean
    sample = dict(pred_bev_seg=pred, gt_bev_seg=gt, token='x')
    metric.process({}, [sample])
    pred2, gt2 = torch.zeros_like(pred), torch.zeros_like(gt)
    pred2[0] = True               # a: I = 2, U = 6 in sample 2
    gt2[0, 0, :2] = 1
    metric.process({}, [dict(pred_bev_seg=pred2, gt_bev_seg=gt2)])
    res = metric.compute_metrics(metric.results)
    assert res['IoU_a'] == pytest.approx((2 + 2) / (4 + 6))
    assert res['IoU_b'] == 0.0 and 'IoU_c' not in res
    assert res['mIoU'] == pytest.approx((0.4 + 0.0) / 2)


def test_metric_across_ranks_equals_single():
    """Two "ranks" each processing half of the samples, results merged (what BaseMetric's
    collect_results does), give the same metrics as one process over all samples."""
    g = torch.Generator().manual_seed(0)
    samples = [dict(pred_bev_seg=torch.rand(4, 8, 8, generator=g) > 0.5,
                    gt_bev_seg=(torch.rand(4, 8, 8, generator=g) > 0.6).to(torch.uint8))
               for _ in range(5)]
    single, rank0, rank1 = (METRICS.build(dict(type='BEVSegMetric')) for _ in range(3))
    single.process({}, samples)
    rank0.process({}, samples[:3])
    rank1.process({}, samples[3:])
    assert single.compute_metrics(single.results) == \
        rank0.compute_metrics(rank0.results + rank1.results)
    # Per-sample results are counts, not masks.
    assert set(single.results[0]) == {'intersection', 'union'}
    assert single.results[0]['union'].shape == (4, )
    # Through BaseMetric.evaluate (prefix, non-distributed collection).
    single.results = list(rank0.results + rank1.results)
    out = single.evaluate(len(samples))
    assert set(out) == {f'bev_seg/IoU_{c}' for c in CLASSES} | {'bev_seg/mIoU'}


def test_metric_shape_mismatch_raises():
    metric = BEVSegMetric()
    with pytest.raises(ValueError, match='differ in shape'):
        metric.process({}, [dict(pred_bev_seg=torch.zeros(4, 8, 8, dtype=torch.bool),
                                 gt_bev_seg=torch.zeros(4, 4, 4))])
    with pytest.raises(KeyError, match='pred_bev_seg'):
        metric.process({}, [dict(gt_bev_seg=torch.zeros(4, 4, 4))])
