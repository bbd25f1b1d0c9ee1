"""PerspectiveHead: dense per-camera targets land on the real key frame's projected objects,
a batch of two equals two batches of one, the head learns on its own, and the detector adds
its losses in training only."""
import copy

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

import projects.bevformer  # noqa: F401
from mmdet.registry import MODELS
from projects.bevformer.constants import CAMERAS
from projects.bevformer.geometry.boxes import box_corners
from projects.bevformer.geometry.camera import project_points

IMG_HW = (900, 1600)
FEAT_HW = (57, 100)  # stride 16 of the 912 x 1600 padded image
PAD_HW = (912, 1600)


def _head(**kw):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    head = MODELS.build(dict(type='PerspectiveHead', in_channels=8, feat_channels=8, **kw))
    head.init_weights()
    return head


@pytest.fixture(scope='module')
def real(real_info):
    info = real_info
    inst = [i for i in info['instances'] if i['label'] >= 0 and i['valid_flag']]
    boxes = torch.tensor([i['bbox_3d'] for i in inst], dtype=torch.float64)
    labels = torch.tensor([i['label'] for i in inst])
    lidar2img = torch.tensor(np.stack([info['cams'][c]['lidar2img'] for c in CAMERAS]))
    return boxes, labels, lidar2img


def _targets(head, boxes, labels, lidar2img, bs=1):
    return head.get_targets([boxes] * bs, [labels] * bs, lidar2img[None].repeat(bs, 1, 1, 1),
                            torch.tensor([IMG_HW] * bs), FEAT_HW, PAD_HW)


def test_targets_land_on_the_projected_objects(real):
    boxes, labels, lidar2img = real
    t = _targets(_head(), boxes, labels, lidar2img)
    assert len(t['index']) >= 20  # cars, pedestrians, barriers of the key frame
    corners = box_corners(boxes[:, :7])  # (M, 8, 3)
    uv, depth = project_points(corners.reshape(-1, 3), lidar2img)  # (N, M*8, 2)
    uv = uv.view(6, len(boxes), 8, 2)
    for (image, row, col), off in zip(t['index'].tolist(), t['offset'].tolist()):
        # the heatmap peaks (1.0) at the target cell, in some class channel
        assert t['heatmap'][image, :, row, col].max() == 1.0
        # the peak lies inside the 2D box of one of the objects projected into that camera
        px = torch.tensor([(col + off[0]) * 16, (row + off[1]) * 16], dtype=torch.float64)
        lo, hi = uv[image].amin(1), uv[image].amax(1)  # (M, 2)
        assert ((px >= lo - 1) & (px <= hi + 1)).all(-1).any()
    assert (t['depth'].exp() > 0.5).all() and (t['depth'].exp() < 80).all()
    assert (t['offset'] >= 0).all() and (t['offset'] < 1).all()
    assert (t['extent'] >= 1 / 16).all()
    # Classes: every visible object's heatmap channel is its label's.
    assert set(t['heatmap'].flatten(2).amax(-1).nonzero()[:, 1].tolist()) <= set(labels.tolist())


def test_batch_of_two_equals_two_batches_of_one(real):
    boxes, labels, lidar2img = real
    head = _head()
    other = boxes[::2].clone()
    other[:, 0] += 1.0
    t1 = head.get_targets([boxes], [labels], lidar2img[None], torch.tensor([IMG_HW]),
                          FEAT_HW, PAD_HW)
    t2 = head.get_targets([other], [labels[::2]], lidar2img[None], torch.tensor([IMG_HW]),
                          FEAT_HW, PAD_HW)
    both = head.get_targets([boxes, other], [labels, labels[::2]], lidar2img[None].repeat(
        2, 1, 1, 1), torch.tensor([IMG_HW] * 2), FEAT_HW, PAD_HW)
    torch.testing.assert_close(both['heatmap'], torch.cat([t1['heatmap'], t2['heatmap']]))
    shifted = t2['index'].clone()
    shifted[:, 0] += 6
    torch.testing.assert_close(both['index'], torch.cat([t1['index'], shifted]))
    for key in ('offset', 'extent', 'depth'):
        torch.testing.assert_close(both[key], torch.cat([t1[key], t2[key]]))
    # Per-image predictions are independent of the batch.
    head.eval()
    feats = torch.randn(2, 6, 8, *FEAT_HW)
    with torch.no_grad():
        out2 = head(feats.flatten(0, 1))
        out1 = head(feats[1])
    torch.testing.assert_close(out2['heatmap'][6:], out1['heatmap'])


def test_the_head_learns_on_its_own(real):
    boxes, labels, lidar2img = real
    head = _head()
    targets = _targets(head, boxes, labels, lidar2img)
    torch.manual_seed(1)
    feats = torch.randn(6, 8, *FEAT_HW)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        losses = head.loss_by_feat(head(feats), targets)
        total = sum(losses.values())
        first = float(total) if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert set(losses) == {'persp.loss_heatmap', 'persp.loss_offset', 'persp.loss_extent',
                           'persp.loss_depth'}
    assert float(total) < 0.5 * first, (first, float(total))


def test_no_visible_object_gives_zero_regression_losses():
    head = _head()
    far = torch.tensor([[0.0, -30.0, -1.0, 4.0, 2.0, 1.5, 0.0]])  # behind the front camera
    lidar2img = torch.eye(4)[None, None].repeat(1, 1, 1, 1)
    lidar2img[0, 0, :3, :3] = torch.tensor([[100.0, 0, 50], [0, 100, 50], [0, 0, 1]])
    t = head.get_targets([far], [torch.tensor([0])], lidar2img, torch.tensor([[100, 100]]),
                         (25, 25), (100, 100))
    assert len(t['index']) == 0 and t['heatmap'].max() == 0
    losses = head.loss_by_feat(head(torch.randn(1, 8, 25, 25)), t)
    assert float(losses['persp.loss_depth']) == 0 and torch.isfinite(losses['persp.loss_heatmap'])


def test_detector_adds_the_losses_in_training_only(tmp_path):
    from mmengine.dataset import pseudo_collate

    from mmdet.registry import DATASETS
    from tests.test_bevformer.bev_data_helpers import make_synthetic_dataroot
    from tests.test_bevformer.tiny_bevformer import tiny_cfg
    root, _ = make_synthetic_dataroot(str(tmp_path), num_scenes=2, frames_per_scene=2)
    cfg = tiny_cfg(root)
    init_default_scope('mmdet')
    with_persp = copy.deepcopy(cfg.model)
    with_persp.perspective_head = dict(type='PerspectiveHead', in_channels=32, feat_channels=16)
    torch.manual_seed(0)
    model = MODELS.build(with_persp)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.queue_length = 1
    ds = DATASETS.build(ds_cfg)
    data = model.data_preprocessor(pseudo_collate([ds[0], ds[1]]), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    persp = {k: v for k, v in losses.items() if k.startswith('persp.')}
    assert len(persp) == 4 and all(torch.isfinite(v) for v in persp.values())
    assert 'loss_cls' in losses
    model.eval()
    with torch.no_grad():  # inference does not run the head
        calls = []
        handle = model.perspective_head.register_forward_hook(lambda *a: calls.append(1))
        model.predict(data['inputs'], data['data_samples'])
        handle.remove()
    assert calls == []
