"""Soft-NMS (ops/nms.py) against mmcv's ops (axis-aligned, rotated); the empty / bad input
cases also go through bevformer's batched_nms_3d, whose other tests are in
tests/test_bevformer/test_models/test_heads/test_bev_nms.py."""
import math

import pytest
import torch
from mmcv.ops import box_iou_rotated, nms_rotated
from mmcv.ops import soft_nms as mmcv_soft_nms

from projects.bevformer.models.heads.bev_nms import batched_nms_3d
from projects.deformable_detr.ops import soft_nms
from tests.test_deformable_detr.test_ops.nms_boxes import random_boxes, to_rotated


@pytest.mark.parametrize('method', ['linear', 'gaussian', 'naive'])
def test_axis_aligned_equals_mmcv(method):
    boxes, scores = random_boxes(60)
    dets, keep = soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, min_score=0.05,
                          method=method)
    ref_dets, ref_keep = mmcv_soft_nms(boxes, scores, 0.3, 0.5, 0.05, method)
    assert torch.equal(keep, ref_keep.long())
    torch.testing.assert_close(dets, ref_dets)
    assert torch.all(dets[1:, 4] <= dets[:-1, 4])  # sorted by decayed score
    torch.testing.assert_close(dets[:, :4], boxes[keep])


@pytest.mark.parametrize('method', ['linear', 'gaussian', 'naive'])
def test_rotated_with_zero_yaw_equals_axis_aligned(method):
    boxes, scores = random_boxes(60, seed=1)
    dets, keep = soft_nms(boxes, scores, 0.3, 0.5, 0.05, method)
    rdets, rkeep = soft_nms(to_rotated(boxes), scores, 0.3, 0.5, 0.05, method)
    assert torch.equal(rkeep, keep)
    assert rdets.shape == (len(keep), 6)
    torch.testing.assert_close(rdets[:, 5], dets[:, 4], rtol=1e-4, atol=1e-5)


def test_rotated_naive_equals_mmcv_nms_rotated():
    boxes, scores = random_boxes(60, seed=2)
    rot = to_rotated(boxes)
    rot[:, 4] = torch.linspace(-math.pi, math.pi, len(rot))
    _, keep = soft_nms(rot, scores, iou_threshold=0.2, min_score=1e-3, method='naive')
    _, ref_keep = nms_rotated(rot, scores, 0.2)
    assert torch.equal(keep, ref_keep.long())


def test_rotation_convention_is_ccw_yaw():
    """A 4 x 2 box at yaw +45 deg runs along the (1, 1) diagonal, so a 0.2 x 0.2 box
    centred at (1, 1) lies inside it: IoU = 0.04 / 8. With the opposite angle sign the
    small box would be outside (distance sqrt(2) > 1 from the long axis): IoU = 0."""
    big = torch.tensor([[0.0, 0.0, 4.0, 2.0, math.pi / 4]])
    small = torch.tensor([[1.0, 1.0, 0.2, 0.2, 0.0]])
    torch.testing.assert_close(box_iou_rotated(big, small), torch.tensor([[0.005]]))
    flipped = big.clone()
    flipped[:, 4] = -flipped[:, 4]
    assert box_iou_rotated(flipped, small).item() == 0.0
    # and our Soft-NMS decays the small box accordingly (linear, threshold below 0.005)
    dets, keep = soft_nms(torch.cat([big, small]), torch.tensor([0.9, 0.8]),
                          iou_threshold=0.001, method='linear')
    torch.testing.assert_close(dets[1, 5], torch.tensor(0.8 * (1 - 0.005)))


@pytest.mark.parametrize('num_cols', [4, 5])
def test_empty_input(num_cols):
    boxes = torch.zeros(0, num_cols)
    scores = torch.zeros(0)
    dets, keep = soft_nms(boxes, scores)
    assert dets.shape == (0, num_cols + 1) and keep.shape == (0,)
    for cfg in (dict(type='nms', iou_threshold=0.5),
                dict(type='soft_nms', iou_threshold=0.5, max_per_img=10)):
        dets, keep = batched_nms_3d(boxes, scores, torch.zeros(0, dtype=torch.long), cfg)
        assert dets.shape == (0, num_cols + 1) and keep.shape == (0,) and keep.dtype == torch.long


def test_bad_input_raises():
    boxes, scores = random_boxes(5)
    with pytest.raises(ValueError, match=r'boxes must be \(N, 4\).*got shape \(5, 3\)'):
        soft_nms(boxes[:, :3], scores)
    with pytest.raises(ValueError, match=r'scores must be \(5,\)'):
        soft_nms(boxes, scores[:4])
    with pytest.raises(ValueError, match='method must be one of'):
        soft_nms(boxes, scores, method='cubic')
    with pytest.raises(KeyError, match='iou_thr'):
        batched_nms_3d(boxes, scores, torch.zeros(5, dtype=torch.long),
                       dict(type='nms', iou_thr=0.5))
    with pytest.raises(KeyError, match='only apply to'):
        batched_nms_3d(boxes, scores, torch.zeros(5, dtype=torch.long),
                       dict(type='nms', iou_threshold=0.5, sigma=0.5))
