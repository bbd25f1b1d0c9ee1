"""Box coding, BEV footprint convention, match cost, Hungarian assigner and NMS-free coder."""
import itertools
import math

import pytest
import torch
from mmcv.ops import box_iou_rotated
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.structures import InstanceData

import projects.bevformer  # noqa: F401  (registers the modules)
from projects.bevformer.geometry.box_coding import (bev_rotated_boxes, decode_bboxes_3d,
                                                    encode_bboxes_3d)
from projects.bevformer.geometry.boxes import box_corners


def random_boxes(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * 80 - 40
    lwh = torch.rand(n, 3, generator=g) * 5 + 0.2
    yaw = (torch.rand(n, 1, generator=g) * 2 - 1) * math.pi * 0.999
    vel = torch.randn(n, 2, generator=g)
    return torch.cat([xyz, lwh, yaw, vel], dim=1).double()


# ---------------------------------------------------------------- box coding
def test_encode_layout_and_round_trip():
    boxes = random_boxes(50)
    codes = encode_bboxes_3d(boxes)
    assert codes.shape == (50, 10)
    torch.testing.assert_close(codes[:, 0:2], boxes[:, 0:2])
    torch.testing.assert_close(codes[:, 2:4], boxes[:, 3:5].log())  # log l, log w
    torch.testing.assert_close(codes[:, 4], boxes[:, 2] + boxes[:, 5] / 2)  # gravity centre
    torch.testing.assert_close(codes[:, 5], boxes[:, 5].log())
    torch.testing.assert_close(codes[:, 6], boxes[:, 6].sin())
    torch.testing.assert_close(codes[:, 7], boxes[:, 6].cos())
    torch.testing.assert_close(codes[:, 8:], boxes[:, 7:])
    torch.testing.assert_close(decode_bboxes_3d(codes), boxes)


def test_decode_unnormalised_heading_and_batch_dims():
    boxes = random_boxes(6, seed=1).float().view(2, 3, 9)
    codes = encode_bboxes_3d(boxes)
    codes[..., 6:8] *= 3.7  # the network's (sin, cos) need not lie on the unit circle
    torch.testing.assert_close(decode_bboxes_3d(codes), boxes, rtol=1e-5, atol=1e-5)


def test_box_coding_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r'\(\.\.\., 9\).*\(4, 7\)'):
        encode_bboxes_3d(torch.zeros(4, 7))
    with pytest.raises(ValueError, match=r'\(\.\.\., 10\).*\(4, 9\)'):
        decode_bboxes_3d(torch.zeros(4, 9))


def bev_box_corners(bboxes: torch.Tensor) -> torch.Tensor:
    """(N, 4, 2) BEV footprint, counter-clockwise: the bottom face of ``box_corners``."""
    return box_corners(bboxes)[:, :4, :2]


def test_bev_corners_follow_heading():
    # l = 4 along the heading; heading +y (yaw = 90 deg) => long side along y
    box = torch.tensor([[1.0, 2.0, 0.0, 4.0, 1.0, 1.5, math.pi / 2, 0.0, 0.0]])
    corners = bev_box_corners(box)[0]
    torch.testing.assert_close(corners[:, 0].min(), torch.tensor(0.5))
    torch.testing.assert_close(corners[:, 0].max(), torch.tensor(1.5))
    torch.testing.assert_close(corners[:, 1].min(), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(corners[:, 1].max(), torch.tensor(4.0))
    # first corner is front-left: ahead (+y) and to the left (-x) of the centre
    torch.testing.assert_close(corners[0], torch.tensor([0.5, 4.0]))


def test_bev_rotated_boxes_match_polygon_iou():
    """mmcv's rotated IoU on (x, y, l, w, yaw) equals the IoU of the true footprints."""
    shapely_geometry = pytest.importorskip('shapely.geometry')
    a = random_boxes(12, seed=2).float()
    b = a.clone()
    b[:, :2] += torch.randn(12, 2, generator=torch.Generator().manual_seed(3))
    b[:, 6] += 0.7  # rotations make a wrong axis / angle convention visible
    ious = box_iou_rotated(bev_rotated_boxes(a), bev_rotated_boxes(b), aligned=True)
    polys_a = [shapely_geometry.Polygon(c.tolist()) for c in bev_box_corners(a)]
    polys_b = [shapely_geometry.Polygon(c.tolist()) for c in bev_box_corners(b)]
    ref = torch.tensor([pa.intersection(pb).area / pa.union(pb).area
                        for pa, pb in zip(polys_a, polys_b)])
    assert (ref > 0.05).sum() >= 4  # the check is not vacuous
    torch.testing.assert_close(ious, ref, atol=1e-4, rtol=0)


# ---------------------------------------------------------------- registry names
@pytest.mark.parametrize('name,registry', [('HungarianAssigner3D', TASK_UTILS),
                                           ('BBox3DL1Cost', TASK_UTILS),
                                           ('NMSFreeCoder', TASK_UTILS),
                                           ('BEVFormerHead', MODELS),
                                           ('BEVDetectionDecoder', MODELS)])
def test_registered_in_own_module(name, registry):
    cls = registry.get(name)
    assert cls is not None and cls.__module__.startswith('projects.bevformer.')


# ---------------------------------------------------------------- match cost + assigner
def test_bbox3d_l1_cost_ignores_velocity():
    cost = TASK_UTILS.build(dict(type='BBox3DL1Cost', weight=0.25))
    pred = torch.randn(5, 10)
    gt = torch.randn(3, 10)
    gt_nan_vel = gt.clone()
    gt_nan_vel[:, 8:] = float('nan')
    c = cost(InstanceData(bboxes=pred), InstanceData(bboxes=gt_nan_vel))
    ref = 0.25 * (pred[:, None, :8] - gt[None, :, :8]).abs().sum(-1)
    torch.testing.assert_close(c, ref)


def build_assigner():
    return TASK_UTILS.build(dict(type='HungarianAssigner3D', match_costs=[
        dict(type='FocalLossCost', weight=2.0), dict(type='BBox3DL1Cost', weight=0.25)]))


def test_assigner_recovers_perfect_predictions():
    num_classes, nq = 4, 8
    gt_boxes = random_boxes(3, seed=4).float()
    gt_codes = encode_bboxes_3d(gt_boxes)
    gt_labels = torch.tensor([2, 0, 3])
    slots = torch.tensor([5, 1, 6])  # query that carries each gt
    scores = torch.full((nq, num_classes), -8.0)
    bboxes = encode_bboxes_3d(random_boxes(nq, seed=5).float())
    scores[slots, gt_labels] = 8.0
    bboxes[slots] = gt_codes
    result = build_assigner().assign(InstanceData(scores=scores, bboxes=bboxes),
                                     InstanceData(labels=gt_labels, bboxes=gt_codes))
    expected = torch.zeros(nq, dtype=torch.long)
    expected[slots] = torch.arange(1, 4)
    assert result.num_gts == 3
    torch.testing.assert_close(result.gt_inds, expected)
    expected_labels = torch.full((nq,), -1, dtype=torch.long)
    expected_labels[slots] = gt_labels
    torch.testing.assert_close(result.labels, expected_labels)


def test_assigner_matches_brute_force():
    g = torch.Generator().manual_seed(6)
    assigner = build_assigner()
    for trial in range(5):
        nq, ng, nc = 5, 3, 3
        pred = InstanceData(scores=torch.randn(nq, nc, generator=g),
                            bboxes=torch.randn(nq, 10, generator=g))
        gt = InstanceData(labels=torch.randint(0, nc, (ng,), generator=g),
                          bboxes=torch.randn(ng, 10, generator=g))
        cost = sum(c(pred, gt) for c in assigner.match_costs)
        best = min(sum(cost[q, j].item() for j, q in enumerate(perm))
                   for perm in itertools.permutations(range(nq), ng))
        result = assigner.assign(pred, gt)
        pos = torch.nonzero(result.gt_inds > 0).squeeze(1)
        assert pos.numel() == ng
        assert sorted((result.gt_inds[pos] - 1).tolist()) == list(range(ng))
        got = sum(cost[q, result.gt_inds[q] - 1].item() for q in pos.tolist())
        assert got == pytest.approx(best, rel=1e-6), trial


def test_assigner_zero_gt_and_nan_velocity():
    assigner = build_assigner()
    pred = InstanceData(scores=torch.randn(4, 3), bboxes=torch.randn(4, 10))
    empty = InstanceData(labels=torch.zeros(0, dtype=torch.long), bboxes=torch.zeros(0, 10))
    result = assigner.assign(pred, empty)
    assert result.num_gts == 0 and (result.gt_inds == 0).all() and (result.labels == -1).all()
    gt = InstanceData(labels=torch.tensor([1]), bboxes=pred.bboxes[2:3].clone())
    gt.bboxes[:, 8:] = float('nan')  # unknown velocity must not break the matching
    assert assigner.assign(pred, gt).gt_inds.count_nonzero() == 1


# ---------------------------------------------------------------- coder
def test_nms_free_coder_topk_labels_and_decode():
    coder = TASK_UTILS.build(dict(type='NMSFreeCoder', num_classes=3, max_num=4))
    logits = torch.full((5, 3), -5.0)
    logits[3, 1], logits[0, 2], logits[3, 0] = 4.0, 3.0, 2.0
    codes = encode_bboxes_3d(random_boxes(5, seed=7).float())
    res = coder.decode(logits, codes)
    assert len(res) == 4
    torch.testing.assert_close(res.scores_3d[:3], torch.tensor([4.0, 3.0, 2.0]).sigmoid())
    assert res.labels_3d[:3].tolist() == [1, 2, 0]
    torch.testing.assert_close(res.bboxes_3d[:3], decode_bboxes_3d(codes[[3, 0, 3]]))
    assert (res.scores_3d[:-1] >= res.scores_3d[1:]).all()


def test_nms_free_coder_filters_score_and_range():
    coder = TASK_UTILS.build(dict(type='NMSFreeCoder', num_classes=2, max_num=10,
                                  score_threshold=0.3,
                                  post_center_range=[-10, -10, -2, 10, 10, 2]))
    boxes = torch.tensor([[0.0, 0, -1, 4, 2, 1.5, 0, 0, 0],   # gravity z = -0.25: in
                          [11.0, 0, 0, 4, 2, 1.5, 0, 0, 0],   # x out of range
                          [0.0, 5, 1.5, 4, 2, 1.5, 0, 0, 0],  # gravity z = 2.25: out
                          [0.0, -9, 0, 4, 2, 1.5, 0, 0, 0]])  # in, but low score
    logits = torch.tensor([[3.0, -9], [3.0, -9], [3.0, -9], [-2.0, -9]])
    res = coder.decode(logits, encode_bboxes_3d(boxes))
    assert len(res) == 1
    torch.testing.assert_close(res.bboxes_3d, boxes[:1], atol=1e-5, rtol=0)
    assert res.labels_3d.tolist() == [0]
