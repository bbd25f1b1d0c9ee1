"""Tests for projects/bevformer/visualization and tools/analysis/visualize.py."""
import importlib.util
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from matplotlib.lines import Line2D

from projects.bevformer.geometry.boxes import box_corners
from projects.bevformer.geometry.camera import project_points
from projects.bevformer.structures import Det3DDataSample
from projects.bevformer.visualization import (BOX_EDGES, draw_sample, load_predictions,
                                              project_box_edges, visualize_infos)

from tests.test_bevformer.bev_data_helpers import REAL_SAMPLE_DIR, real_sample_info, write_infos

L2I = np.array([[500.0, 0, 320, 0], [0, 500, 240, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # cam = lidar


def test_edges_of_a_box_in_front_are_projected_corners():
    box = np.array([[0.5, 0.2, 10.0, 2.0, 1.0, 1.5, 0.3]])  # camera z = LiDAR z here
    segs, valid = project_box_edges(box, L2I)
    assert segs.shape == (1, len(BOX_EDGES), 2, 2) and valid.all()
    uv, _ = project_points(box_corners(box)[0], L2I)
    for e, (a, b) in enumerate(BOX_EDGES):
        np.testing.assert_allclose(segs[0, e], [uv[a], uv[b]], atol=1e-9)


def test_edges_clipped_at_near_plane():
    # A box spanning depth -1 .. 3 (crosses the camera plane): clipped ends lie at depth near.
    box = np.array([[0.0, 0.0, -1.0, 1.0, 1.0, 4.0, 0.0]])
    segs, valid = project_box_edges(box, L2I, near=0.5)
    corners = box_corners(box)[0]
    for e, (a, b) in enumerate(BOX_EDGES):
        da, db = corners[a, 2], corners[b, 2]
        assert valid[0, e] == (da > 0.5 or db > 0.5)
        if valid[0, e] and min(da, db) <= 0.5:
            # the clipped end is the projection of the 3D point at depth 0.5 on the edge
            t = (0.5 - da) / (db - da)
            p = corners[a] + t * (corners[b] - corners[a])
            uv, _ = project_points(p[None], L2I)
            end = segs[0, e, 0] if da <= 0.5 else segs[0, e, 1]
            np.testing.assert_allclose(end, uv[0], atol=1e-6)
    assert np.isfinite(segs[valid]).all()
    behind = np.array([[0.0, 0.0, -9.0, 1.0, 1.0, 1.0, 0.0]])
    assert not project_box_edges(behind, L2I)[1].any()
    assert project_box_edges(np.zeros((0, 9)), L2I)[0].shape == (0, len(BOX_EDGES), 2, 2)


def test_real_boxes_contain_their_lidar_points():
    """The real boxes as drawn (our convention, z at the bottom) hold the annotated number of
    LiDAR points: the geometry the visualiser draws is the annotation's."""
    info = real_sample_info()['data_list'][0]
    pts = np.fromfile(osp.join(REAL_SAMPLE_DIR, info['lidar_path']), np.float32)
    pts = pts.reshape(-1, 5)[:, :3].astype(np.float64)
    ratios = []
    for inst in info['instances']:
        if inst['num_lidar_pts'] < 10:
            continue
        x, y, z, l, w, h, yaw = inst['bbox_3d']
        rel = pts - [x, y, z]
        c, s = np.cos(yaw), np.sin(yaw)
        along, across = rel[:, 0] * c + rel[:, 1] * s, -rel[:, 0] * s + rel[:, 1] * c
        inside = ((np.abs(along) < l / 2) & (np.abs(across) < w / 2) & (rel[:, 2] > 0)
                  & (rel[:, 2] < h))
        ratios.append(inside.sum() / inst['num_lidar_pts'])
    assert len(ratios) >= 10
    assert np.median(np.abs(np.array(ratios) - 1)) < 0.1, ratios


def test_draw_sample_lines(tmp_path):
    imgs = [np.zeros((48, 64, 3), np.uint8) for _ in range(2)]
    l2i = np.stack([L2I, L2I]) * [[[0.1]], [[0.1]]]
    l2i[:, 2:, :] = L2I[2:]
    gt = np.array([[0.0, 0.0, 10.0, 2.0, 1.0, 1.5, 0.0, 0, 0]])
    pred = np.array([[0.5, 0.0, 10.0, 2.0, 1.0, 1.5, 0.0, 0, 0]])
    out = tmp_path / 'x.png'
    fig = draw_sample(imgs, l2i, ['CAM_FRONT', 'CAM_BACK'], gt_boxes=gt, pred_boxes=pred,
                      pred_scores=np.array([0.9]), pred_labels=np.array([0]),
                      classes=['car'], out_file=str(out))
    assert out.stat().st_size > 1000
    cams = [ax for ax in fig.axes if ax.get_title() in ('CAM_FRONT', 'CAM_BACK')]
    for ax in cams:  # one GT and one prediction box, 14 segments each
        assert sum(isinstance(a, Line2D) for a in ax.get_lines()) == 2 * len(BOX_EDGES)
        assert [t.get_text() for t in ax.texts] == ['car 0.90']
    bev = [ax for ax in fig.axes if ax.get_title().startswith('BEV')][0]
    assert len(bev.get_lines()) == 2 * 2 + 1  # ring + heading per box, ego marker
    with pytest.raises(ValueError, match='must agree'):
        draw_sample(imgs, l2i[:1], ['CAM_FRONT', 'CAM_BACK'])


def _preds_from_gt(info, flat=False):
    inst = [i for i in info['instances'] if i['label'] >= 0]
    boxes = np.array([i['bbox_3d'] + [0.0, 0.0] for i in inst], dtype=np.float32)
    scores = np.linspace(0.9, 0.1, len(inst))
    labels = np.array([i['label'] for i in inst])
    if flat:
        return dict(token=info['token'], bboxes_3d=boxes, scores_3d=scores, labels_3d=labels)
    sample = Det3DDataSample(metainfo=dict(token=info['token']))
    from mmengine.structures import InstanceData
    sample.pred_instances_3d = InstanceData(bboxes_3d=torch.from_numpy(boxes),
                                            scores_3d=torch.from_numpy(scores),
                                            labels_3d=torch.from_numpy(labels))
    return sample.to_dict()


def test_load_predictions_formats(tmp_path):
    info = real_sample_info()['data_list'][0]
    for flat in (False, True):
        path = tmp_path / f'p{flat}.pkl'
        path.write_bytes(pickle.dumps([_preds_from_gt(info, flat)]))
        preds = load_predictions(str(path))
        p = preds[info['token']]
        assert p['bboxes_3d'].shape[1] == 9 and p['scores_3d'].shape == p['labels_3d'].shape
    path = tmp_path / 'bad.pkl'
    path.write_bytes(pickle.dumps([dict(token='t', pred_instances_3d=dict(bboxes_3d=[]))]))
    with pytest.raises(ValueError, match=r"entry 0 \(token t\) misses \['scores_3d'"):
        load_predictions(str(path))
    with pytest.raises(FileNotFoundError, match='nothing.pkl'):
        load_predictions(str(tmp_path / 'nothing.pkl'))


def _cli():
    """tools/analysis/visualize.py as a module."""
    spec = importlib.util.spec_from_file_location('visualize_cli', 'tools/analysis/visualize.py')
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def test_visualize_real_sample_and_cli(tmp_path):
    infos = real_sample_info()
    info_file = write_infos(infos, str(tmp_path / 'real.pkl'))
    pred_file = tmp_path / 'pred.pkl'
    pred_file.write_bytes(pickle.dumps([_preds_from_gt(infos['data_list'][0])]))
    paths = visualize_infos(info_file, REAL_SAMPLE_DIR, str(tmp_path / 'vis'),
                            pred_file=str(pred_file), score_thr=0.5, dpi=40)
    assert paths == [str(tmp_path / 'vis' / f'{infos["data_list"][0]["token"]}.png')]
    assert osp.getsize(paths[0]) > 10000
    out = _cli().main(['--info', info_file, '--data-root', REAL_SAMPLE_DIR, '--out-dir',
                    str(tmp_path / 'cli'), '--num', '1', '--dpi', '30'])
    assert len(out) == 1 and osp.isfile(out[0])
    # unknown tokens: nothing drawn; missing images: the error names the file
    assert visualize_infos(info_file, REAL_SAMPLE_DIR, str(tmp_path / 'n'), tokens=['x']) == []
    with pytest.raises(FileNotFoundError, match='CAM_FRONT.jpg'):
        visualize_infos(info_file, str(tmp_path), str(tmp_path / 'm'))


def test_cli_auto_threshold_draws_detections_above_noise(tmp_path, capsys, monkeypatch):
    """``--score-thr auto`` on the real key frame: every counted GT box predicted (scores
    0.9 .. 0.6) plus as many noise boxes of a class the frame lacks (trailer, 0.29 .. 0.1) ->
    P = R = 1 printed, only the detections drawn, the threshold in the title; predictions 5 m
    off every GT box -> 'no prediction matches', only the --topk best guesses drawn."""
    from projects.bevformer.visualization import info_viewer
    infos = real_sample_info()
    info = infos['data_list'][0]
    info_file = write_infos(infos, str(tmp_path / 'real.pkl'))
    inst = [i for i in info['instances'] if i['label'] >= 0 and i['valid_flag']]
    boxes = np.array([i['bbox_3d'] + [0.0, 0.0] for i in inst])
    labels = np.array([i['label'] for i in inst])
    n = len(inst)
    drawn = []
    draw = info_viewer.draw_sample
    monkeypatch.setattr(info_viewer, 'draw_sample',
                        lambda *a, **kw: drawn.append(kw) or draw(*a, **kw))

    def run(pred_boxes, name, *extra):
        pred = dict(token=info['token'], bboxes_3d=np.concatenate([pred_boxes, boxes]),
                    scores_3d=np.concatenate([np.linspace(0.9, 0.6, n), np.linspace(0.29, 0.1, n)]),
                    labels_3d=np.concatenate([labels, np.full(n, 4)]))
        (tmp_path / f'{name}.pkl').write_bytes(pickle.dumps([pred]))
        out = _cli().main(['--info', info_file, '--data-root', REAL_SAMPLE_DIR, '--out-dir',
                           str(tmp_path / name), '--pred', str(tmp_path / f'{name}.pkl'),
                           '--score-thr', 'auto', '--dpi', '30', *extra])
        assert len(out) == 1 and osp.getsize(out[0]) > 10000
        return capsys.readouterr().out, drawn[-1]

    printed, kw = run(boxes, 'right')
    assert 'precision 1.000, recall 1.000, F1 1.000' in printed
    assert len(kw['pred_boxes']) == n and (kw['pred_labels'] != 4).all()
    assert min(kw['pred_scores']) >= 0.6
    assert 'predictions: score >= 0.' in kw['title'] and 'max F1 over real.pkl: P 1.00 R 1.00' \
        in kw['title']
    assert kw['legend'][0].startswith('ground truth') and kw['legend'][1]

    printed, kw = run(boxes + [5.0, 0, 0, 0, 0, 0, 0, 0, 0], 'wrong', '--topk', '3')
    assert 'no prediction matches the ground truth' in printed
    assert 'no prediction matches the ground truth: model has not learned yet' in kw['title']
    assert kw['pred_scores'].tolist() == sorted(kw['pred_scores'], reverse=True)
    assert len(kw['pred_boxes']) == 3 and 'best guesses' in kw['title']
    with pytest.raises(SystemExit):  # auto needs the predictions
        _cli().parse_args(['--info', info_file, '--data-root', '.', '--out-dir', '.',
                           '--score-thr', 'auto'])
