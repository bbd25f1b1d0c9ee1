"""batched_nms_3d (models/heads/bev_nms.py): NMS / Soft-NMS of BEV boxes per class against
mmcv's ops (axis-aligned and rotated), score floor and max_per_img."""
import math

import pytest
import torch
from mmcv.ops import nms, nms_rotated

from projects.bevformer.models.heads.bev_nms import batched_nms_3d
from tests.test_deformable_detr.test_ops.nms_boxes import random_boxes, to_rotated


@pytest.mark.parametrize('rotated', [False, True])
def test_crowded_scene_soft_nms_keeps_occluded_object(rotated):
    """Two pedestrians side by side (IoU 0.5): hard NMS drops the second, Soft-NMS keeps it
    with a decayed score; a far-away box is untouched."""
    boxes = torch.tensor([[0.0, 0.0, 2.0, 4.0], [0.667, 0.0, 2.667, 4.0], [10, 10, 12, 14]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.zeros(3, dtype=torch.long)
    if rotated:
        boxes = to_rotated(boxes)
    _, hard_keep = batched_nms_3d(boxes, scores, labels, dict(type='nms', iou_threshold=0.3))
    assert hard_keep.tolist() == [0, 2]
    dets, soft_keep = batched_nms_3d(
        boxes, scores, labels,
        dict(type='soft_nms', iou_threshold=0.3, method='linear', min_score=0.05))
    assert soft_keep.tolist() == [0, 2, 1]
    iou = (2 - 0.667) * 4 / (2 * 8 - (2 - 0.667) * 4)
    torch.testing.assert_close(dets[:, -1], torch.tensor([0.9, 0.7, 0.8 * (1 - iou)]),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('rotated', [False, True])
def test_hard_nms_equals_mmcv(rotated):
    boxes, scores = random_boxes(80, seed=3)
    labels = torch.zeros(80, dtype=torch.long)
    if rotated:
        boxes = to_rotated(boxes)
        boxes[:, 4] = torch.rand(80) * 2 * math.pi - math.pi
        ref_dets, ref_keep = nms_rotated(boxes, scores, 0.4)
    else:
        ref_dets, ref_keep = nms(boxes, scores, 0.4)
    dets, keep = batched_nms_3d(boxes, scores, labels, dict(type='nms', iou_threshold=0.4))
    assert torch.equal(keep, ref_keep.long())
    torch.testing.assert_close(dets, ref_dets)


@pytest.mark.parametrize('rotated', [False, True])
@pytest.mark.parametrize('nms_type', ['nms', 'soft_nms'])
def test_class_aware(rotated, nms_type):
    boxes, scores = random_boxes(50, seed=4)
    labels = torch.arange(50) % 3
    if rotated:
        boxes = to_rotated(boxes, yaw=0.3)
    cfg = dict(type=nms_type, iou_threshold=0.3)
    if nms_type == 'soft_nms':
        cfg.update(method='linear', min_score=0.05)
    dets, keep = batched_nms_3d(boxes, scores, labels, cfg)
    # equals running each class alone
    expected = {}
    for c in range(3):
        idx = torch.nonzero(labels == c).squeeze(1)
        d, k = batched_nms_3d(boxes[idx], scores[idx], labels[idx], cfg)
        expected.update({int(idx[i]): float(s) for i, s in zip(k, d[:, -1])})
    assert {int(k): pytest.approx(float(s), rel=1e-5) for k, s in zip(keep, dets[:, -1])} \
        == expected
    assert torch.all(dets[1:, -1] <= dets[:-1, -1])
    # identical boxes of different classes both survive, unless class-agnostic
    twin_boxes = boxes[:1].repeat(2, 1)
    twin_scores = torch.tensor([0.9, 0.8])
    _, keep2 = batched_nms_3d(twin_boxes, twin_scores, torch.tensor([0, 1]), dict(cfg))
    assert keep2.tolist() == [0, 1]
    agnostic = dict(cfg, class_agnostic=True)
    if nms_type == 'soft_nms':
        agnostic.update(method='naive')
    _, keep3 = batched_nms_3d(twin_boxes, twin_scores, torch.tensor([0, 1]), agnostic)
    assert keep3.tolist() == [0]


@pytest.mark.parametrize('rotated', [False, True])
def test_min_score_and_max_per_img(rotated):
    boxes, scores = random_boxes(40, seed=5)
    labels = torch.arange(40) % 2
    if rotated:
        boxes = to_rotated(boxes)
    cfg = dict(type='soft_nms', iou_threshold=0.3, method='gaussian', sigma=0.5, min_score=0.3)
    dets, keep = batched_nms_3d(boxes, scores, labels, cfg)
    assert len(keep) > 5
    assert torch.all(dets[:, -1] >= 0.3)
    assert not torch.isin(torch.nonzero(scores < 0.3).squeeze(1), keep).any()
    dets5, keep5 = batched_nms_3d(boxes, scores, labels, dict(cfg, max_per_img=5))
    assert torch.equal(keep5, keep[:5])
    torch.testing.assert_close(dets5, dets[:5])
