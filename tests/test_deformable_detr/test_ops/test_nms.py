"""NMS / Soft-NMS against mmcv's ops (axis-aligned, rotated, class-aware)."""
import math

import pytest
import torch
from mmcv.ops import box_iou_rotated, nms, nms_rotated
from mmcv.ops import soft_nms as mmcv_soft_nms

from projects.bevformer.models.heads.bev_nms import batched_nms_3d
from projects.deformable_detr.ops import soft_nms


def random_boxes(n: int, seed: int = 0):
    """Clustered axis-aligned boxes (many overlaps) and distinct scores."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n // 5 + 1, 2, generator=g) * 40
    ctr = centres[torch.arange(n) % centres.shape[0]] + torch.randn(n, 2, generator=g) * 2
    wh = torch.rand(n, 2, generator=g) * 8 + 4
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=1)
    scores = torch.randperm(n, generator=g).float() / n * 0.9 + 0.05
    return boxes, scores


def to_rotated(boxes: torch.Tensor, yaw: float = 0.0) -> torch.Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h, yaw)."""
    ctr = (boxes[:, :2] + boxes[:, 2:]) / 2
    wh = boxes[:, 2:] - boxes[:, :2]
    return torch.cat([ctr, wh, torch.full_like(ctr[:, :1], yaw)], dim=1)


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
