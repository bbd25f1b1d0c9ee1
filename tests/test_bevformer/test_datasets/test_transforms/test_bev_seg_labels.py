"""BEV map segmentation: label rasterisation, the head, the metric, joint det + seg training."""
import copy
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from shapely.geometry import LineString, Point, Polygon

import projects.bevformer  # noqa: F401
from mmdet.registry import DATASETS, METRICS, MODELS
from projects.bevformer.datasets.transforms import LoadBEVSegLabels, PackBEVInputs
from projects.bevformer.datasets.transforms.bev_seg_labels import load_synthetic_layout
from projects.bevformer.evaluation import BEVSegMetric
from projects.bevformer.geometry.rasterize import (bev_patch_in_global, global_to_grid,
                                                   rasterize_polygons, rasterize_polylines)
from projects.bevformer.structures import Det3DDataSample
from tests.test_bevformer.bev_data_helpers import make_synthetic_dataroot

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PC_RANGE = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
CLASSES = ('drivable_area', 'ped_crossing', 'walkway', 'divider')


def pose(x: float, y: float, yaw_deg: float, z: float = 0.0) -> np.ndarray:
    yaw = np.radians(yaw_deg)
    out = np.eye(4)
    out[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    out[:3, 3] = (x, y, z)
    return out


def cell_centres_global(lidar2global, bev_h, bev_w, pc_range=PC_RANGE):
    """(bev_h, bev_w, 2) global xy of the cell centres, through the full 4x4 pose."""
    dx = (pc_range[3] - pc_range[0]) / bev_w
    dy = (pc_range[4] - pc_range[1]) / bev_h
    rows, cols = np.meshgrid(np.arange(bev_h), np.arange(bev_w), indexing='ij')
    pts = np.stack([pc_range[0] + (cols + 0.5) * dx, pc_range[1] + (rows + 0.5) * dy,
                    np.zeros_like(rows, float), np.ones_like(rows, float)], -1)
    return (pts @ np.asarray(lidar2global).T)[..., :2]


# ----------------------------------------------------------------------------- rasterising
def test_divider_at_known_offset_with_yaw_90():
    """Ego at (100, 200) heading +y (yaw 90 deg): a global line 11 m to the ego's left
    (x = 89, along global y) lies at LiDAR y = +11 along LiDAR x -> one row, every column."""
    l2g = pose(100.0, 200.0, 90.0)
    line = np.array([[89.0, 100.0], [89.0, 300.0]])
    np.testing.assert_allclose(global_to_grid(np.array([[89.0, 200.0]]), l2g, 32, 32, PC_RANGE),
                               [[16.0, (11 + 51.2) / 3.2]])
    mask = rasterize_polylines([line], l2g, 32, 32, PC_RANGE, width=1.0)
    expected = np.zeros((32, 32), bool)
    expected[19, :] = True  # row 19 spans y in [9.6, 12.8), the line [10.5, 11.5]
    np.testing.assert_array_equal(mask, expected)
    # A 4 m wide line covers y in [9, 13]: rows 18 (6.4-9.6), 19 and 20 (12.8-16).
    wide = rasterize_polylines([line], l2g, 32, 32, PC_RANGE, width=4.0)
    assert set(np.nonzero(wide.any(1))[0]) == {18, 19, 20} and wide[18:21].all()
    # Non-square grid: rows still follow LiDAR y, columns LiDAR x.
    mask_hw = rasterize_polylines([line], l2g, 16, 64, PC_RANGE, width=1.0)
    assert np.nonzero(mask_hw.any(1))[0].tolist() == [9] and mask_hw[9].all()  # 6.4 m rows


def test_polygon_cells_are_those_whose_centre_is_inside():
    """Parity with shapely point-in-polygon on the cell centres mapped through the full pose
    (here with a LiDAR mounted at yaw -90 deg on a yawed ego, and a polygon with a hole)."""
    lidar2ego = pose(0.9, 0.0, -90.0, z=1.8)
    ego2global = pose(400.0, 1100.0, 33.0)
    l2g = ego2global @ lidar2ego
    outer = np.array([[380.0, 1080.0], [440.0, 1090.0], [430.0, 1140.0], [385.0, 1125.0]])
    hole = np.array([[400.0, 1100.0], [412.0, 1100.0], [412.0, 1110.0], [400.0, 1110.0]])
    poly = Polygon(outer, [hole])
    mask = rasterize_polygons([poly], l2g, 40, 24, PC_RANGE)
    centres = cell_centres_global(l2g, 40, 24)
    ref = np.array([[poly.contains(Point(*c)) for c in row] for row in centres])
    np.testing.assert_array_equal(mask, ref)
    assert 50 < mask.sum() < mask.size and not mask[tuple(np.argwhere(ref == 0)[0])]
    # A plain vertex array (exterior only) fills the hole.
    filled = rasterize_polygons([outer], l2g, 40, 24, PC_RANGE)
    assert filled.sum() > mask.sum() and (filled | mask).sum() == filled.sum()
    # Far away: nothing.
    assert not rasterize_polygons([outer + 1000.0], l2g, 40, 24, PC_RANGE).any()


def test_line_cells_are_those_the_widened_line_overlaps():
    l2g = pose(-20.0, 7.0, 200.0)
    line = np.array([[-60.0, -10.0], [-10.0, 20.0], [25.0, 22.0]])
    mask = rasterize_polylines([line], l2g, 20, 20, PC_RANGE, width=2.0)
    band = LineString(line).buffer(1.0, cap_style='flat')
    dx = dy = 102.4 / 20
    ref = np.zeros_like(mask)
    for r in range(20):
        for c in range(20):
            corners = np.array([[PC_RANGE[0] + c * dx, PC_RANGE[1] + r * dy],
                                [PC_RANGE[0] + (c + 1) * dx, PC_RANGE[1] + r * dy],
                                [PC_RANGE[0] + (c + 1) * dx, PC_RANGE[1] + (r + 1) * dy],
                                [PC_RANGE[0] + c * dx, PC_RANGE[1] + (r + 1) * dy]])
            glob = np.c_[corners, np.zeros(4), np.ones(4)] @ l2g.T
            ref[r, c] = Polygon(glob[:, :2]).intersects(band)
    np.testing.assert_array_equal(mask, ref)
    assert mask.sum() > 10


def test_bad_geometry_raises():
    with pytest.raises(ValueError, match='polygon 1'):
        rasterize_polygons([np.zeros((3, 2)) + [[0, 0], [1, 0], [0, 1]], np.zeros((2, 2))],
                           np.eye(4), 8, 8, PC_RANGE)
    with pytest.raises(ValueError, match='width'):
        rasterize_polylines([], np.eye(4), 8, 8, PC_RANGE, width=-1)
    with pytest.raises(ValueError, match=r'\(4, 4\)'):
        rasterize_polylines([[[0, 0], [1, 1]]], np.eye(3), 8, 8, PC_RANGE, width=1)


def test_bev_patch_in_global_bounds_the_grid():
    l2g = pose(10.0, -5.0, 30.0)
    x0, y0, x1, y1 = bev_patch_in_global(l2g, PC_RANGE)
    centres = cell_centres_global(l2g, 8, 8).reshape(-1, 2)
    assert (centres >= [x0, y0]).all() and (centres <= [x1, y1]).all()
    half = 51.2 * (np.cos(np.radians(30)) + np.sin(np.radians(30)))
    np.testing.assert_allclose([x0, y0, x1, y1], [10 - half, -5 - half, 10 + half, -5 + half])


# --------------------------------------------------------------------- labels of a dataroot
@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny_nuscenes_seg'))
    make_synthetic_dataroot(root, num_scenes=2, frames_per_scene=4)
    return root


@pytest.fixture(scope='module')
def frames(data_root):
    ds = DATASETS.build(dict(type='NuScenesBEVDataset', data_root=data_root,
                             ann_file='nuscenes_infos_train.pkl', test_mode=True))
    return [ds.get_data_info(i) for i in range(len(ds))]


def test_labels_follow_the_layout(data_root, frames):
    t = LoadBEVSegLabels(bev_h=48, bev_w=40, pc_range=PC_RANGE, classes=CLASSES,
                         data_root=data_root, line_width=1.0)
    layout = load_synthetic_layout(osp.join(data_root, 'maps', 'synthetic_layout.json'))
    info = frames[2]
    out = t(dict(info))
    seg = out['gt_bev_seg']
    assert seg.shape == (4, 48, 40) and seg.dtype == np.uint8
    scene = layout[info['scene_name']]
    # drivable area: cell centres (through the full lidar2global) inside a polygon.
    centres = cell_centres_global(info['lidar2global'], 48, 40)
    polys = [Polygon(p) for p in scene['drivable_area']]
    ref = np.array([[any(p.intersects(Point(*c)) for p in polys) for c in row]
                    for row in centres])
    np.testing.assert_array_equal(seg[0].astype(bool), ref)
    assert 0 < seg[0].mean() < 1  # the ego drives on a road: it is in view, not everywhere
    # divider = lane_divider | road_divider
    lines = rasterize_polylines(scene['lane_divider'] + scene['road_divider'],
                               info['lidar2global'], 48, 40, PC_RANGE, 1.0)
    np.testing.assert_array_equal(seg[3].astype(bool), lines)
    assert seg[3].any() and seg[2].any()
    # The ego stands on the drivable area: the cells around the LiDAR origin are road.
    assert seg[0, 23:25, 19:21].all()


def test_labels_errors(data_root, frames):
    with pytest.raises(ValueError, match='unknown classes'):
        LoadBEVSegLabels(bev_h=8, bev_w=8, pc_range=PC_RANGE, classes=('lane', 'sky'))
    t = LoadBEVSegLabels(bev_h=8, bev_w=8, pc_range=PC_RANGE, data_root=data_root)
    with pytest.raises(KeyError, match='scene-nowhere'):
        t(dict(frames[0], scene_name='scene-nowhere'))
    with pytest.raises(KeyError, match='lidar2global'):
        t({k: v for k, v in frames[0].items() if k != 'lidar2global'})
    missing = LoadBEVSegLabels(bev_h=8, bev_w=8, pc_range=PC_RANGE, data_root='/nonexistent')
    with pytest.raises(FileNotFoundError, match='synthetic_layout.json'):
        missing(dict(frames[0]))


def _write_map_expansion(root: str, scene_layouts: dict, location: str) -> None:
    """The synthetic layout as a nuScenes map expansion JSON (devkit format, map v1.3)."""
    nodes, polygons, lines = [], [], []
    layers = {k: [] for k in ('drivable_area', 'road_segment', 'road_block', 'lane',
                              'ped_crossing', 'walkway', 'stop_line', 'carpark_area',
                              'road_divider', 'lane_divider', 'traffic_light',
                              'lane_connector')}

    def add_nodes(points):
        tokens = []
        for x, y in points:
            tokens.append(f'n{len(nodes)}')
            nodes.append(dict(token=tokens[-1], x=float(x), y=float(y)))
        return tokens

    for scene in scene_layouts.values():
        for layer in ('drivable_area', 'walkway', 'ped_crossing'):
            for ring in scene[layer]:
                tok = f'p{len(polygons)}'
                polygons.append(dict(token=tok, exterior_node_tokens=add_nodes(ring), holes=[]))
                rec = dict(token=f'{layer}{len(layers[layer])}')
                if layer == 'drivable_area':  # the one layer with several polygons
                    rec['polygon_tokens'] = [tok]
                else:
                    rec['polygon_token'] = tok
                layers[layer].append(rec)
        for layer in ('lane_divider', 'road_divider'):
            for line in scene[layer]:
                tok = f'l{len(lines)}'
                lines.append(dict(token=tok, node_tokens=add_nodes(line)))
                layers[layer].append(dict(token=f'{layer}{len(layers[layer])}', line_token=tok,
                                          lane_divider_segments=[]))
    os.makedirs(osp.join(root, 'maps', 'expansion'), exist_ok=True)
    with open(osp.join(root, 'maps', 'expansion', f'{location}.json'), 'w') as f:
        json.dump(dict(version='1.3', canvas_edge=[3000.0, 3000.0], node=nodes, polygon=polygons,
                       line=lines, arcline_path_3={}, connectivity={}, **layers), f)


def test_nuscenes_map_expansion_source_matches_the_layout(data_root, frames, tmp_path):
    """The devkit path (NuScenesMap records in the BEV patch) gives the same labels as the
    layout JSON when the expansion holds the same geometry."""
    import shutil
    root = str(tmp_path / 'root')
    os.makedirs(root)
    shutil.copytree(osp.join(data_root, 'v1.0-mini'), osp.join(root, 'v1.0-mini'))
    with open(osp.join(root, 'v1.0-mini', 'log.json')) as f:
        logs = json.load(f)
    for log in logs:  # the devkit only knows the four real locations
        log['location'] = 'boston-seaport'
    with open(osp.join(root, 'v1.0-mini', 'log.json'), 'w') as f:
        json.dump(logs, f)
    layout = load_synthetic_layout(osp.join(data_root, 'maps', 'synthetic_layout.json'))
    from_map = LoadBEVSegLabels(bev_h=32, bev_w=32, pc_range=PC_RANGE, classes=CLASSES,
                                data_root=root, map_version='v1.0-mini')
    from_layout = LoadBEVSegLabels(bev_h=32, bev_w=32, pc_range=PC_RANGE, classes=CLASSES,
                                   data_root=data_root)
    # The synthetic scenes share one global area, so each frame gets a map of its scene.
    for info in (frames[0], frames[-1]):
        _write_map_expansion(root, {info['scene_name']: layout[info['scene_name']]},
                             'boston-seaport')
        from_map._source = None
        a, b = from_map(dict(info))['gt_bev_seg'], from_layout(dict(info))['gt_bev_seg']
        np.testing.assert_array_equal(a, b)
        assert a[0].any() and a[3].any()


def test_pack_puts_labels_in_the_data_sample(frames, data_root):
    res = dict(frames[0], img=np.zeros((6, 16, 24, 3), np.float32))
    res = LoadBEVSegLabels(bev_h=16, bev_w=16, pc_range=PC_RANGE, data_root=data_root)(res)
    packed = PackBEVInputs()(res)
    gt = packed['data_samples'].gt_bev_seg
    assert isinstance(gt, torch.Tensor) and gt.dtype == torch.uint8
    np.testing.assert_array_equal(gt.numpy(), res['gt_bev_seg'])
    assert 'gt_bev_seg' not in PackBEVInputs()(dict(img=res['img']))['data_samples']


# ---------------------------------------------------------------------------------- the head
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


# -------------------------------------------------------------------------------- the metric
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


# ------------------------------------------------------------------ configs, joint training
SEG_CONFIGS = ['bevformer_quickstart_synthetic_seg.py', 'bevformer_quickstart_synthetic_det_seg.py',
               'bevformer_tiny_seg.py', 'bevformer_tiny_det_seg.py']


@pytest.mark.parametrize('name', SEG_CONFIGS)
def test_seg_configs_load_and_build(name):
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(REPO, 'configs/bevformer', name))
    joint = 'det_seg' in name
    assert set(cfg.model.heads) == ({'det', 'seg'} if joint else {'seg'})
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    assert [e['type'] for e in evaluators] == (['NuScenesMetric', 'BEVSegMetric'] if joint
                                               else ['BEVSegMetric'])
    for loader in ('train_dataloader', 'val_dataloader'):
        steps = {t['type']: t for t in cfg[loader].dataset.pipeline}
        lab = steps['LoadBEVSegLabels']
        head = cfg.model.heads.seg
        assert head.num_classes == len(lab['classes']) == len(evaluators[-1]['classes'])
    model = MODELS.build(cfg.model)
    seg = model.heads['seg']
    assert type(seg).__name__ == 'BEVSegHead'
    # The label grid is the encoder's grid (handed to the head) times the upsampling.
    assert (lab['bev_h'], lab['bev_w']) == seg.out_size == (
        model.bev_encoder.bev_h * seg.upsample_factor, model.bev_encoder.bev_w * seg.upsample_factor)


def tiny_joint_cfg(data_root: str) -> Config:
    """The joint synthetic config at test size (the detector test's shrunk quickstart)."""
    from tests.test_bevformer.tiny_bevformer import tiny_cfg
    joint = Config.fromfile(osp.join(REPO, 'configs/bevformer',
                                     'bevformer_quickstart_synthetic_det_seg.py'))
    cfg = tiny_cfg(data_root)
    seg = copy.deepcopy(joint.model.heads.seg)
    seg.update(feat_channels=16)
    cfg.model.heads.seg = seg
    cfg.model.head_loss_weights = dict(det=1.0, seg=2.0)
    labels = dict(type='LoadBEVSegLabels', classes=list(CLASSES), bev_h=16, bev_w=16,
                  pc_range=list(PC_RANGE), data_root=data_root)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipeline = copy.deepcopy(cfg[loader].dataset.pipeline)
        pipeline.insert(-1, labels)
        cfg[loader].dataset.pipeline = pipeline
    return cfg


def test_joint_det_seg_training_and_prediction(data_root):
    init_default_scope('mmdet')
    cfg = tiny_joint_cfg(data_root)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.update(queue_length=2, queue_sampling='consecutive', filter_empty_gt=False)
    ds = DATASETS.build(ds_cfg)
    data = model.data_preprocessor(pseudo_collate([ds[1], ds[2]]), True)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seg_losses = []
    for _ in range(3):
        losses = model.loss(data['inputs'], data['data_samples'])
        assert {'loss_cls', 'loss_bbox', 'seg.loss_seg', 'seg.loss_dice'} <= set(losses)
        for key, value in losses.items():
            assert torch.isfinite(value).all(), key
        seg_losses.append((losses['seg.loss_seg'] + losses['seg.loss_dice']).item())
        total = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        total.backward()
        # both heads and the shared encoder receive gradients
        assert model.heads['seg'].cls_conv.weight.grad.abs().sum() > 0
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in model.bev_encoder.parameters())
        optim.step()
    assert seg_losses[-1] < seg_losses[0]
    # The head weight multiplies the seg losses.
    model.head_loss_weights['seg'] = 1.0
    model.eval()
    with torch.no_grad():
        once = model.heads['seg'].loss(model.extract_bev(data['inputs'],
                                                         data['data_samples']),
                                       data['data_samples'])
        model.head_loss_weights['seg'] = 2.0
        twice = model.loss(data['inputs'], data['data_samples'])
    torch.testing.assert_close(twice['seg.loss_seg'], 2 * once['loss_seg'])

    # Prediction fills both fields; the evaluators read theirs.
    test_ds = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    model.video_test_mode = False
    batch = model.data_preprocessor(pseudo_collate([test_ds[0], test_ds[1]]), False)
    with torch.no_grad():
        preds = model.predict(batch['inputs'], batch['data_samples'])
    assert all(p.pred_bev_seg.shape == (4, 16, 16) for p in preds)
    assert all(len(p.pred_instances_3d.scores_3d) > 0 for p in preds)
    seg_metric = METRICS.build(dict(type='BEVSegMetric', classes=list(CLASSES)))
    det_metric = METRICS.build(copy.deepcopy(cfg.val_evaluator))
    as_dicts = [p.to_dict() for p in preds]  # what mmengine's Evaluator hands the metrics
    seg_metric.process({}, as_dicts)
    det_metric.process({}, as_dicts)
    assert len(det_metric.results) == 2
    res = seg_metric.compute_metrics(seg_metric.results)
    assert 0.0 <= res['mIoU'] <= 1.0
