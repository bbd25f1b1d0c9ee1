"""BEVSegHead (models/heads/bev_seg_head.py): the logits follow the flat BEV index, the head
fits a fixed target, a batch of two equals two batches of one, bad inputs are named."""
import pytest
import torch

import projects.bevformer  # noqa: F401
from mmdet.registry import MODELS
from projects.bevformer.structures import Det3DDataSample


def seg_head(**kwargs):
    cfg = dict(type='BEVSegHead', embed_dims=8, bev_h=6, bev_w=10, num_classes=3,
               feat_channels=16, upsample_factor=2,
               loss_dice=dict(type='DiceLoss', use_sigmoid=True, loss_weight=1.0))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def samples_with(gt: torch.Tensor):
    out = []
    for g in gt:
        ds = Det3DDataSample(metainfo=dict(token='t'))
        ds.gt_bev_seg = g
        out.append(ds)
    return out


def test_head_layout_follows_the_flat_index():
    """Logits at (row, col) come from B_t[:, row * bev_w + col] (1x1 conv only)."""
    torch.manual_seed(0)
    head = seg_head(num_convs=0, upsample_factor=1, num_classes=2).eval()
    bev = torch.zeros(2, 60, 8)
    bev[1, 2 * 10 + 7] = torch.randn(8)
    logits = head(bev)
    assert logits.shape == (2, 2, 6, 10)
    base = head.cls_conv.bias[None, :, None, None]
    changed = (logits - base).abs().sum(1) > 1e-6
    assert changed.nonzero().tolist() == [[1, 2, 7]]


def test_head_shapes_loss_decreases_and_predict():
    torch.manual_seed(0)
    head = seg_head(class_weight=[1.0, 2.0, 0.5])
    bev = torch.randn(2, 60, 8)
    # a fixed random target, constant over the 2x2 cells one BEV cell upsamples to
    gt = (torch.rand(2, 3, 6, 10) > 0.6).to(torch.uint8)
    gt = gt.repeat_interleave(2, 2).repeat_interleave(2, 3)
    samples = samples_with(gt)
    assert head(bev).shape == (2, 3, 12, 20)
    optim = torch.optim.Adam(head.parameters(), lr=3e-2)
    history = []
    for _ in range(20):
        losses = head.loss(bev, samples)
        assert set(losses) == {'loss_seg', 'loss_dice'}
        total = sum(losses.values())
        assert torch.isfinite(total)
        history.append(total.item())
        optim.zero_grad()
        total.backward()
        optim.step()
    assert history[-1] < 0.5 * history[0]
    with torch.no_grad():
        masks = head.predict(bev, samples)
        assert len(masks) == 2 and masks[0].shape == (3, 12, 20) and masks[0].dtype == torch.bool
        # fitted: the predictions reproduce the fixed target
        assert torch.stack(masks).eq(gt.bool()).float().mean() > 0.95
        head.eval()
        masks = head.predict(bev, samples)
        # batch 2 == two batches of 1
        for b in range(2):
            one = head.predict(bev[b:b + 1], samples[b:b + 1])[0]
            assert torch.equal(one, masks[b])


def test_head_bad_inputs():
    head = seg_head()
    with pytest.raises(ValueError, match=r'\(bs, 60, 8\)'):
        head(torch.zeros(1, 59, 8))
    with pytest.raises(ValueError, match=r'expected \(3, 12, 20\)'):
        head.loss(torch.zeros(1, 60, 8), samples_with(torch.zeros(1, 3, 6, 10)))
    with pytest.raises(KeyError, match='gt_bev_seg'):
        head.loss(torch.zeros(1, 60, 8), [Det3DDataSample()])
    with pytest.raises(ValueError, match='power of 2'):
        seg_head(upsample_factor=3)
