"""BEVFormerHead and BEVDetectionDecoder on a tiny configuration (C=32, 8x8 BEV)."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.structures import InstanceData

import projects.bevformer  # noqa: F401  (registers the modules)
from projects.bevformer.geometry.box_coding import encode_bboxes_3d
from projects.bevformer.models.heads import bev_nms
from projects.bevformer.structures import Det3DDataSample

C, BEV_H, BEV_W, NQ, NUM_CLASSES = 32, 8, 8, 20, 10
PC_RANGE = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]


def head_cfg(**overrides) -> dict:
    cfg = dict(
        type='BEVFormerHead', num_classes=NUM_CLASSES, embed_dims=C, num_query=NQ,
        bev_h=BEV_H, bev_w=BEV_W, pc_range=PC_RANGE,
        decoder=dict(type='BEVDetectionDecoder', num_layers=2, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=C, num_heads=4, dropout=0.0),
            cross_attn_cfg=dict(embed_dims=C, num_heads=4, num_levels=1, num_points=4,
                                dropout=0.0),
            ffn_cfg=dict(embed_dims=C, feedforward_channels=64, ffn_drop=0.0))),
        bbox_coder=dict(type='NMSFreeCoder', num_classes=NUM_CLASSES, max_num=30,
                        post_center_range=[-61.2, -61.2, -10, 61.2, 61.2, 10]))
    cfg.update(overrides)
    return cfg


def build_head(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    head = MODELS.build(head_cfg(**overrides))
    head.init_weights()
    return head


def make_sample(bboxes: torch.Tensor, labels: torch.Tensor) -> Det3DDataSample:
    sample = Det3DDataSample()
    sample.gt_instances_3d = InstanceData(bboxes_3d=bboxes, labels_3d=labels)
    return sample


def gt_sample() -> Det3DDataSample:
    boxes = torch.tensor([[10.0, -5.0, -1.8, 4.5, 1.9, 1.6, 0.3, 3.0, 0.5],
                          [-20.0, 15.0, -1.5, 0.6, 0.7, 1.8, -2.0, 0.0, float('nan')],
                          [5.0, 30.0, -1.0, 11.0, 2.8, 3.5, 1.6, -1.0, 4.0]])
    return make_sample(boxes, torch.tensor([0, 8, 1]))


def test_forward_shapes_and_centres_in_range():
    head = build_head()
    bev = torch.randn(2, BEV_H * BEV_W, C)
    cls, bbox = head(bev)
    assert cls.shape == (2, 2, NQ, NUM_CLASSES)
    assert bbox.shape == (2, 2, NQ, 10)
    lo, hi = torch.tensor(PC_RANGE[:3]), torch.tensor(PC_RANGE[3:])
    centres = bbox[..., [0, 1, 4]]
    assert ((centres >= lo) & (centres <= hi)).all()


def test_bad_bev_shape_raises():
    head = build_head()
    with pytest.raises(ValueError, match=r'bev_embed must be \(bs, 64, 32\).*\(1, 63, 32\)'):
        head(torch.randn(1, 63, C))


def test_refinement_uses_previous_layer_prediction():
    """Layer i+1 starts from the (detached) centre predicted by layer i."""
    head = build_head()
    head.eval()
    bev = torch.randn(1, BEV_H * BEV_W, C)
    _, bbox = head(bev)
    # re-run the decoder to get its reference points
    query_pos, query = head.query_embedding.weight.split(C, dim=1)
    init_ref = head.reference_points(query_pos[None]).sigmoid()
    shapes = torch.tensor([[BEV_H, BEV_W]])
    _, refs = head.decoder(query[None], query_pos[None], bev, init_ref, shapes,
                           torch.zeros(1, dtype=torch.long), head.reg_branches)
    lo, hi = head.pc_range[:3], head.pc_range[3:]
    ref_metres = refs[0] * (hi - lo) + lo
    torch.testing.assert_close(bbox[0][..., [0, 1, 4]], ref_metres, atol=1e-4, rtol=1e-5)
    assert not refs.requires_grad


def test_cross_attention_samples_bev_cell_under_reference():
    """Layout contract: a reference at (x, y) reads column x * bev_w, row y * bev_h."""
    head = build_head()
    layer = head.decoder.layers[0]
    with torch.no_grad():  # every sampling point exactly on the reference point
        layer.cross_attn.sampling_offsets.weight.zero_()
        layer.cross_attn.sampling_offsets.bias.zero_()
    row, col = 2, 5
    ref = torch.tensor([[[(col + 0.5) / BEV_W, (row + 0.5) / BEV_H, 0.5]]])
    bev = torch.randn(1, BEV_H * BEV_W, C, requires_grad=True)
    q = torch.randn(1, 1, C)
    out, _ = head.decoder(q, torch.zeros_like(q), bev, ref, torch.tensor([[BEV_H, BEV_W]]),
                          torch.zeros(1, dtype=torch.long), None)
    (out[0] * torch.randn_like(out[0])).sum().backward()  # a plain sum is LayerNorm-invariant
    touched = torch.nonzero(bev.grad[0].abs().sum(-1)).squeeze(1).tolist()
    assert touched == [row * BEV_W + col]


def test_loss_keys_and_overfit_one_sample():
    head = build_head()
    head.train()
    bev = torch.randn(1, BEV_H * BEV_W, C)
    samples = [gt_sample()]
    optim = torch.optim.AdamW(head.parameters(), lr=2e-3)
    history = []
    for _ in range(40):
        losses = head.loss(bev, samples)
        total = sum(losses.values())
        optim.zero_grad()
        total.backward()
        optim.step()
        history.append((losses['loss_cls'].item(), losses['loss_bbox'].item()))
    assert set(losses) == {'loss_cls', 'loss_bbox', 'd0.loss_cls', 'd0.loss_bbox'}
    assert all(math.isfinite(v) for pair in history for v in pair)
    first_cls, first_bbox = history[0]
    last_cls, last_bbox = history[-1]
    assert last_cls < 0.5 * first_cls, history
    assert last_bbox < 0.5 * first_bbox, history

    # the learned predictions find the objects: best score per gt class near its box
    head.eval()
    with torch.no_grad():
        res = head.predict(bev, samples)[0]
    gt = samples[0].gt_instances_3d
    for box, label in zip(gt.bboxes_3d, gt.labels_3d):
        mine = res.labels_3d == label
        assert mine.any()
        best = res.bboxes_3d[mine][res.scores_3d[mine].argmax()]
        assert (best[:2] - box[:2]).norm() < 3.0, (best, box)  # measured 0.3-1.6 m


def test_zero_gt_sample_gives_finite_losses_and_gradients():
    head = build_head()
    bev = torch.randn(2, BEV_H * BEV_W, C)
    empty = make_sample(torch.zeros(0, 9), torch.zeros(0, dtype=torch.long))
    for samples in ([empty, gt_sample()], [empty, empty]):
        head.zero_grad()
        losses = head.loss(bev, samples)
        assert all(torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()
        grad = head.cls_branches[-1][-1].bias.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert losses['loss_bbox'].item() == 0.0  # no positives: no box loss


def test_nan_velocity_target_only_masks_velocity():
    head = build_head()
    cls = torch.zeros(1, 1, NQ, NUM_CLASSES)
    sample = gt_sample()
    gt = sample.gt_instances_3d
    codes = encode_bboxes_3d(gt.bboxes_3d)
    labels, _, targets, weights, num_pos, assigned = head.get_targets(
        cls[0], torch.zeros(1, NQ, 10), [codes], [gt.labels_3d])
    assert num_pos == 3 and torch.isfinite(targets).all()
    pos = (labels[0] != NUM_CLASSES).nonzero().squeeze(1)
    assert sorted(assigned[0, pos].tolist()) == [0, 1, 2]
    assert (assigned[0] >= 0).sum() == 3
    w = weights[0, pos]
    # exactly one (the pedestrian's vy) masked; all other code weights kept
    assert (w == 0).sum() == 1
    assert torch.equal(w.sum(0)[:8], torch.full((8,), 3.0))


def test_legacy_nan_velocity_target_drops_the_whole_row():
    """The original BEVFormer's L1 drops every entry of a row with a non-finite target."""
    head = build_head(legacy=dict())
    sample = gt_sample()
    gt = sample.gt_instances_3d
    codes = encode_bboxes_3d(gt.bboxes_3d)
    labels, _, targets, weights, num_pos, assigned = head.get_targets(
        torch.zeros(1, NQ, NUM_CLASSES), torch.zeros(1, NQ, 10), [codes], [gt.labels_3d])
    pos = (labels[0] != NUM_CLASSES).nonzero().squeeze(1)
    w = weights[0, pos]
    nan_row = (~torch.isfinite(codes)).any(-1)[assigned[0, pos]]
    assert int(nan_row.sum()) == 1
    assert torch.equal(w[nan_row], torch.zeros(1, 10))
    assert torch.equal(w[~nan_row].sum(0), head.code_weights * 2)
    with pytest.raises(KeyError, match='unknown legacy option'):
        build_head(legacy=dict(drop_rows=True))


def test_predict_shapes_and_range_filter():
    head = build_head()
    head.eval()
    bev = torch.randn(2, BEV_H * BEV_W, C)
    with torch.no_grad():
        results = head.predict(bev, [gt_sample(), gt_sample()])
    assert len(results) == 2
    for res in results:
        assert res.bboxes_3d.shape == (30, 9)
        assert res.scores_3d.shape == (30,) and res.labels_3d.shape == (30,)
        assert res.labels_3d.dtype == torch.long
        assert (res.scores_3d[:-1] >= res.scores_3d[1:]).all()
    # a narrow post-centre range keeps exactly the boxes whose gravity centre is inside
    narrow = [-20.0, -20.0, -10.0, 20.0, 20.0, 10.0]
    head_narrow = build_head(bbox_coder=dict(type='NMSFreeCoder', num_classes=NUM_CLASSES,
                                             max_num=30, post_center_range=narrow))
    head_narrow.eval()
    with torch.no_grad():
        res = head_narrow.predict(bev, [gt_sample(), gt_sample()])[0]
    full = results[0]
    centre = full.bboxes_3d[:, [0, 1, 2]].clone()
    centre[:, 2] += full.bboxes_3d[:, 5] / 2
    inside = ((centre >= torch.tensor(narrow[:3])) & (centre <= torch.tensor(narrow[3:]))).all(1)
    assert 0 < inside.sum() < len(full)
    torch.testing.assert_close(res.bboxes_3d, full.bboxes_3d[inside])
    torch.testing.assert_close(res.scores_3d, full.scores_3d[inside])


def test_batch_of_two_equals_two_batches_of_one():
    head = build_head()
    head.eval()
    bev = torch.randn(2, BEV_H * BEV_W, C)
    samples = [gt_sample(), make_sample(torch.zeros(0, 9), torch.zeros(0, dtype=torch.long))]
    with torch.no_grad():
        both = head.predict(bev, samples)
        single = [head.predict(bev[i:i + 1], samples[i:i + 1])[0] for i in range(2)]
    for a, b in zip(both, single):
        torch.testing.assert_close(a.bboxes_3d, b.bboxes_3d, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.scores_3d, b.scores_3d, atol=1e-6, rtol=1e-5)
        assert torch.equal(a.labels_3d, b.labels_3d)
    # and the summed losses agree with the per-sample ones (matching is per sample)
    torch.manual_seed(0)
    with torch.no_grad():
        l2 = head.loss(bev, samples)
        l1 = [head.loss(bev[i:i + 1], samples[i:i + 1]) for i in range(2)]
    # cls normaliser = total positives: 3 (+0) in the pair, 3 and max(0, 1) alone
    torch.testing.assert_close(l2['loss_cls'] * 3, l1[0]['loss_cls'] * 3 + l1[1]['loss_cls'])
    torch.testing.assert_close(l2['loss_bbox'], l1[0]['loss_bbox'])


def test_bad_ground_truth_raises():
    head = build_head()
    bad = make_sample(torch.zeros(2, 7), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r'sample 0.*\(N, 9\).*\(2, 7\)'):
        head.loss(torch.randn(1, BEV_H * BEV_W, C), [bad])


def _duplicate_predictions():
    """Two queries predict the same car box, a third an overlapping truck, a fourth a
    car elsewhere; all other queries score low."""
    cls = torch.full((1, 1, NQ, NUM_CLASSES), -10.0)
    codes = encode_bboxes_3d(torch.tensor([[5.0, 5.0, -1.0, 4.0, 2.0, 1.5, 0.4, 0, 0]]))
    bbox = codes.expand(1, 1, NQ, 10).clone()
    cls[0, 0, 0, 0], cls[0, 0, 1, 0], cls[0, 0, 2, 1], cls[0, 0, 3, 0] = 3.0, 2.0, 1.0, 0.5
    bbox[0, 0, 1, :2] += torch.tensor([0.2, 0.1])  # near-duplicate of query 0
    bbox[0, 0, 3, :2] = torch.tensor([-30.0, 10.0])
    return cls, bbox


@pytest.mark.parametrize('nms', [
    None,
    dict(type='nms', iou_threshold=0.3),
    dict(type='soft_nms', iou_threshold=0.3, method='linear', min_score=1e-3)])
def test_bev_nms_option_removes_duplicate(nms):
    head = build_head(test_cfg=None if nms is None else dict(nms=nms))
    cls, bbox = _duplicate_predictions()
    res = head.predict_by_feat(cls, bbox)[0]
    top = res[res.scores_3d > 0.5 * torch.tensor(0.5).sigmoid()]
    if nms is None:  # NMS-free keeps both copies of the car
        assert len(top) == 4
        return
    # the near-duplicate car goes (Soft-NMS: decays far below); the truck (other
    # class) and the far car stay with their scores
    assert len(top) == 3
    assert top.labels_3d.tolist() == [0, 1, 0]
    torch.testing.assert_close(top.scores_3d, torch.tensor([3.0, 1.0, 0.5]).sigmoid())
    assert (res.scores_3d[:-1] >= res.scores_3d[1:]).all()
    if nms['type'] == 'soft_nms':
        dup = (res.bboxes_3d[:, :2] - torch.tensor([5.2, 5.1])).norm(dim=1) < 1e-4
        assert dup.sum() == 1 and res.scores_3d[dup] < 0.3 * torch.tensor(2.0).sigmoid()


def test_bev_nms_uses_heading_axis():
    """Two thin boxes side by side along y: they overlap only if l runs along x."""
    boxes = torch.tensor([[0.0, 0.0, 0.0, 4.0, 1.0, 1.5, 0.0, 0, 0],
                          [0.0, 0.9, 0.0, 4.0, 1.0, 1.5, 0.0, 0, 0],   # IoU 0.1/1.9 ~ 0.05
                          [1.0, 0.0, 0.0, 4.0, 1.0, 1.5, 0.0, 0, 0]])  # IoU 3/5 = 0.6
    res = InstanceData(bboxes_3d=boxes, scores_3d=torch.tensor([0.9, 0.8, 0.7]),
                       labels_3d=torch.zeros(3, dtype=torch.long))
    kept = bev_nms(res, dict(type='nms', iou_threshold=0.5))
    torch.testing.assert_close(kept.bboxes_3d, boxes[:2])


def test_without_box_refine_shares_branches_and_keeps_references():
    head = build_head(with_box_refine=False)
    refine = build_head()
    assert head.cls_branches[0] is head.cls_branches[1]
    n_shared = sum(p.numel() for p in head.parameters())
    n_refine = sum(p.numel() for p in refine.parameters())
    branch = sum(p.numel() for p in head.cls_branches[0].parameters()) + sum(
        p.numel() for p in head.reg_branches[0].parameters())
    assert n_refine - n_shared == branch  # one extra copy per extra layer (2 layers)
    head.eval()
    bev = torch.randn(1, BEV_H * BEV_W, C)
    query_pos, query = head.query_embedding.weight.split(C, dim=1)
    init_ref = head.reference_points(query_pos[None]).sigmoid()
    _, refs = head.decoder(query[None], query_pos[None], bev, init_ref,
                           torch.tensor([[BEV_H, BEV_W]]), torch.zeros(1, dtype=torch.long))
    torch.testing.assert_close(refs, init_ref[None].expand(2, -1, -1, -1))
    losses = head.loss(bev, [gt_sample()])
    assert all(torch.isfinite(v) for v in losses.values())
