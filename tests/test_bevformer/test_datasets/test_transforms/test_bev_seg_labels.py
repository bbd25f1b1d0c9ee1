"""LoadBEVSegLabels (datasets/transforms/bev_seg_labels.py) on the tiny synthetic dataroot
(``tiny_root``, tests/conftest.py): the labels follow the layout, the nuScenes map expansion
gives the same labels, errors are named, PackBEVInputs carries them."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from shapely.geometry import Point, Polygon

import projects.bevformer  # noqa: F401
from mmdet.registry import DATASETS
from projects.bevformer.datasets.transforms import LoadBEVSegLabels, PackBEVInputs
from projects.bevformer.datasets.transforms.bev_seg_labels import load_synthetic_layout
from projects.bevformer.geometry.rasterize import rasterize_polylines
from tests.test_bevformer.bev_seg_helpers import CLASSES, PC_RANGE, cell_centres_global


@pytest.fixture(scope='module')
def frames(tiny_root):
    ds = DATASETS.build(dict(type='NuScenesBEVDataset', data_root=tiny_root,
                             ann_file='nuscenes_infos_train.pkl', test_mode=True))
    return [ds.get_data_info(i) for i in range(len(ds))]


def test_labels_follow_the_layout(tiny_root, frames):
    t = LoadBEVSegLabels(bev_h=48, bev_w=40, pc_range=PC_RANGE, classes=CLASSES,
                         data_root=tiny_root, line_width=1.0)
    layout = load_synthetic_layout(osp.join(tiny_root, 'maps', 'synthetic_layout.json'))
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


def test_labels_errors(tiny_root, frames):
    with pytest.raises(ValueError, match='unknown classes'):
        LoadBEVSegLabels(bev_h=8, bev_w=8, pc_range=PC_RANGE, classes=('lane', 'sky'))
    t = LoadBEVSegLabels(bev_h=8, bev_w=8, pc_range=PC_RANGE, data_root=tiny_root)
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


def test_nuscenes_map_expansion_source_matches_the_layout(tiny_root, frames, tmp_path):
    """The devkit path (NuScenesMap records in the BEV patch) gives the same labels as the
    layout JSON when the expansion holds the same geometry."""
    import shutil
    root = str(tmp_path / 'root')
    os.makedirs(root)
    shutil.copytree(osp.join(tiny_root, 'v1.0-mini'), osp.join(root, 'v1.0-mini'))
    with open(osp.join(root, 'v1.0-mini', 'log.json')) as f:
        logs = json.load(f)
    for log in logs:  # the devkit only knows the four real locations
        log['location'] = 'boston-seaport'
    with open(osp.join(root, 'v1.0-mini', 'log.json'), 'w') as f:
        json.dump(logs, f)
    layout = load_synthetic_layout(osp.join(tiny_root, 'maps', 'synthetic_layout.json'))
    from_map = LoadBEVSegLabels(bev_h=32, bev_w=32, pc_range=PC_RANGE, classes=CLASSES,
                                data_root=root, map_version='v1.0-mini')
    from_layout = LoadBEVSegLabels(bev_h=32, bev_w=32, pc_range=PC_RANGE, classes=CLASSES,
                                   data_root=tiny_root)
    # The synthetic scenes share one global area, so each frame gets a map of its scene.
    for info in (frames[0], frames[-1]):
        _write_map_expansion(root, {info['scene_name']: layout[info['scene_name']]},
                             'boston-seaport')
        from_map._source = None
        a, b = from_map(dict(info))['gt_bev_seg'], from_layout(dict(info))['gt_bev_seg']
        np.testing.assert_array_equal(a, b)
        assert a[0].any() and a[3].any()


def test_pack_puts_labels_in_the_data_sample(frames, tiny_root):
    res = dict(frames[0], img=np.zeros((6, 16, 24, 3), np.float32))
    res = LoadBEVSegLabels(bev_h=16, bev_w=16, pc_range=PC_RANGE, data_root=tiny_root)(res)
    packed = PackBEVInputs()(res)
    gt = packed['data_samples'].gt_bev_seg
    assert isinstance(gt, torch.Tensor) and gt.dtype == torch.uint8
    np.testing.assert_array_equal(gt.numpy(), res['gt_bev_seg'])
    assert 'gt_bev_seg' not in PackBEVInputs()(dict(img=res['img']))['data_samples']
