"""BEVHeatmapQueries (queries from BEV heatmap peaks) alone and inside BEVFormerHead."""
import pytest
import torch
from mmdet.registry import MODELS
from torch import nn

import projects.bevformer  # noqa: F401  (registers the modules)
from projects.bevformer.geometry.bev import bev_grid_2d

from .test_bevformer_head import BEV_H, BEV_W, C, NQ, NUM_CLASSES, PC_RANGE, build_head, gt_sample

CELL = (PC_RANGE[3] - PC_RANGE[0]) / BEV_W  # 12.8 m


def build_queries(num_proposals: int = 5, **overrides) -> nn.Module:
    torch.manual_seed(0)
    cfg = dict(type='BEVHeatmapQueries', embed_dims=C, num_classes=NUM_CLASSES,
               num_proposals=num_proposals, bev_h=BEV_H, bev_w=BEV_W, pc_range=PC_RANGE)
    cfg.update(overrides)
    module = MODELS.build(cfg)
    module.init_weights()
    return module.eval()


class FixedHeatmap(nn.Module):
    """Stands in for the conv head: returns the given logits whatever the input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, -1, -1)


def test_targets_peak_at_the_centre_cell_of_each_class():
    queries = build_queries()
    boxes = torch.tensor([[10.0, -5.0, -1.8, 4.5, 1.9, 1.6, 0.3, 0.0, 0.0],   # car
                          [-40.0, 45.0, -1.0, 12.0, 3.0, 3.5, 0.0, 0.0, 0.0],  # bus
                          [60.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0]])  # outside the BEV
    labels = torch.tensor([0, 3, 0])
    target = queries.get_targets([boxes, boxes[:0]], [labels, labels[:0]])
    assert target.shape == (2, NUM_CLASSES, BEV_H, BEV_W)
    peaks = torch.nonzero(target == 1).tolist()
    # x = 10 -> col int(61.2 / 12.8) = 4, y = -5 -> row int(46.2 / 12.8) = 3
    assert peaks == [[0, 0, 3, 4], [0, 3, 7, 0]]
    assert target[1].abs().sum() == 0
    assert target.max() <= 1 and target.min() >= 0
    # the Gaussian spreads at least min_radius = 1 cell around each centre
    assert 0 < target[0, 0, 3, 5] < 1 and 0 < target[0, 0, 2, 4] < 1
    assert target[0, 0, 3, 6] == 0


def test_proposals_are_the_heatmap_peaks():
    queries = build_queries(num_proposals=3)
    logits = torch.full((1, NUM_CLASSES, BEV_H, BEV_W), -5.0)
    logits[0, 2, 1, 6] = 3.0  # best
    logits[0, 2, 1, 5] = 2.5  # next to the best of its class: suppressed by the 3x3 window
    logits[0, 7, 4, 0] = 2.0
    logits[0, 1, 6, 3] = 1.0
    queries.heatmap_head = FixedHeatmap(logits)
    bev = torch.randn(2, BEV_H * BEV_W, C)
    props = queries(bev)
    cells = torch.tensor([1 * BEV_W + 6, 4 * BEV_W + 0, 6 * BEV_W + 3])
    assert props.labels.tolist() == [[2, 7, 1]] * 2
    grid = bev_grid_2d(BEV_H, BEV_W, 1)[0, :, 0]
    assert torch.equal(props.reference_points[..., :2], grid[cells][None].expand(2, -1, -1))
    assert torch.all(props.reference_points[..., 2] == 0.5)
    # content = the BEV feature of the cell + the embedding of the proposed class
    onehot = nn.functional.one_hot(torch.tensor([2, 7, 1]), NUM_CLASSES).float()
    expected = bev[:, cells] + queries.class_embedding(onehot)[None]
    torch.testing.assert_close(props.query, expected)
    assert props.query_pos.shape == (2, 3, C)
    # without the window the neighbour of the best cell is taken instead of (4, 0)
    queries.nms_kernel_size = 1
    assert queries(bev).labels[0].tolist() == [2, 2, 7]


def test_batch_of_two_equals_two_batches_of_one():
    head = build_head(query_init=dict()).eval()
    bev = torch.randn(2, BEV_H * BEV_W, C)
    cls2, bbox2 = head(bev)
    for i in range(2):
        cls1, bbox1 = head(bev[i:i + 1])
        torch.testing.assert_close(cls1[:, 0], cls2[:, i], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bbox1[:, 0], bbox2[:, i], rtol=1e-5, atol=1e-5)


def test_head_adds_heatmap_loss_and_learns_to_propose_the_object():
    head = build_head(query_init=dict())
    assert not hasattr(head, 'query_embedding')  # no unused learned queries
    sample = gt_sample()
    bev = torch.randn(1, BEV_H * BEV_W, C, requires_grad=True)
    losses = head.loss(bev, [sample])
    assert set(losses) == {'loss_cls', 'loss_bbox', 'd0.loss_cls', 'd0.loss_bbox',
                           'loss_heatmap'}
    sum(losses.values()).backward()
    assert bev.grad.abs().sum() > 0
    assert head.query_init.heatmap_head[0].conv.weight.grad.abs().sum() > 0

    bev = bev.detach()
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = head.loss(bev, [sample])['loss_heatmap']
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.3 * first
    head.eval()
    props = head.query_init(bev)
    # the three best proposals are the three objects' cells and classes
    gt = sample.gt_instances_3d
    expected = {(int(lab), int((b[1] - PC_RANGE[1]) // CELL), int((b[0] - PC_RANGE[0]) // CELL))
                for b, lab in zip(gt.bboxes_3d.tolist(), gt.labels_3d)}
    cells = (props.reference_points[0, :3, :2] * torch.tensor([BEV_W, BEV_H])).long()
    got = {(int(lab), int(c[1]), int(c[0])) for lab, c in zip(props.labels[0, :3], cells)}
    assert got == expected


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match='query_init.num_proposals = 7 differs'):
        build_head(query_init=dict(num_proposals=7))
    with pytest.raises(ValueError, match=r'query_init.pc_range = \[-50.0'):
        build_head(query_init=dict(pc_range=[-50.0, -50.0, -5.0, 50.0, 50.0, 3.0]))
    build_head(query_init=dict(pc_range=list(PC_RANGE), bev_h=BEV_H))  # the same values pass
    with pytest.raises(ValueError, match='nms_kernel_size must be odd'):
        build_queries(nms_kernel_size=2)
    with pytest.raises(ValueError, match=r'num_proposals must be in \[1, .* = 640\], got 641'):
        build_queries(num_proposals=NUM_CLASSES * BEV_H * BEV_W + 1)
    with pytest.raises(ValueError, match=r'bev_embed must be \(bs, 64, 32\)'):
        build_queries()(torch.randn(1, 63, C))
    assert NQ <= NUM_CLASSES * BEV_H * BEV_W
