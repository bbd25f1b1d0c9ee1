"""NuScenesMetric: our predictions -> submission JSON -> the official devkit evaluation."""
import json
import os.path as osp

import mmengine
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmdet.registry import METRICS
from projects.bevformer.constants import CLASSES
from projects.bevformer.evaluation import NuScenesMetric, default_attribute
from projects.bevformer.structures import Det3DDataSample
from projects.bevformer.synthetic import generate_synthetic_nuscenes
from tools.dataset_converters.nuscenes_converter import create_nuscenes_infos

NO_ORIENT = {'traffic_cone'}  # the devkit reports NaN for these TP errors
NO_VEL_ATTR = {'traffic_cone', 'barrier'}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('nusc_metric'))
    generate_synthetic_nuscenes(root, num_scenes=2, frames_per_scene=3, objects_per_frame=8,
                                image_scale=0.04, seed=11, verbose=False)
    paths = create_nuscenes_infos(root, root, version='v1.0-mini', progress=False)
    infos = mmengine.load(paths['val'])['data_list']
    return root, paths['val'], infos


def _gt_samples(infos, shift=(0.0, 0.0, 0.0), dyaw=0.0, as_data_sample=False):
    """The valid ground truth of each info as predictions (scores 1)."""
    samples = []
    for info in infos:
        inst = [i for i in info['instances'] if i['label'] >= 0 and i['valid_flag']]
        boxes = np.array([i['bbox_3d'] + list(np.nan_to_num(i['velocity'])) for i in inst],
                         dtype=np.float64).reshape(-1, 9)
        boxes[:, :3] += shift
        boxes[:, 6] += dyaw
        labels = np.array([i['label'] for i in inst], dtype=np.int64)
        scores = np.linspace(1.0, 0.5, len(inst))
        meta = dict(token=info['token'], lidar2ego=info['lidar2ego'],
                    ego2global=info['ego2global'])
        if as_data_sample:
            sample = Det3DDataSample(metainfo=meta)
            sample.pred_instances_3d = InstanceData(
                bboxes_3d=torch.from_numpy(boxes).float(), scores_3d=torch.from_numpy(scores),
                labels_3d=torch.from_numpy(labels))
            samples.append(sample)
        else:
            samples.append(dict(meta, pred_instances_3d=dict(
                bboxes_3d=boxes, scores_3d=scores, labels_3d=labels)))
    return samples


def _present_classes(infos):
    """Classes with GT the devkit keeps: valid boxes within the class range of the ego."""
    from nuscenes.eval.common.config import config_factory
    class_range = config_factory('detection_cvpr_2019').class_range
    present = set()
    for info in infos:
        lidar2global = info['ego2global'] @ info['lidar2ego']
        for i in info['instances']:
            if i['label'] < 0 or not i['valid_flag']:
                continue
            x, y, z, _, _, h, _ = i['bbox_3d']
            centre = lidar2global @ np.array([x, y, z + h / 2, 1.0])
            dist = np.linalg.norm(centre[:2] - info['ego2global'][:2, 3])
            if dist < class_range[CLASSES[i['label']]]:
                present.add(CLASSES[i['label']])
    return present


def _evaluate(root, ann_file, samples, **kwargs):
    metric = NuScenesMetric(data_root=root, ann_file=ann_file, version='v1.0-mini', **kwargs)
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_ground_truth_as_predictions_is_perfect(data):
    root, ann_file, infos = data
    metrics = _evaluate(root, ann_file, _gt_samples(infos))
    present = _present_classes(infos)
    assert len(present) >= 6
    for name in CLASSES:
        if name not in present:
            assert metrics[f'{name}_AP'] == 0.0  # absent classes count as 0 in the mean
            continue
        assert metrics[f'{name}_AP'] == pytest.approx(1.0, abs=1e-9), name
        assert metrics[f'{name}_ATE'] < 1e-6 and metrics[f'{name}_ASE'] < 1e-6, name
        if name not in NO_ORIENT:
            assert metrics[f'{name}_AOE'] < 1e-3, name
        else:
            assert np.isnan(metrics[f'{name}_AOE'])
        if name not in NO_VEL_ATTR:
            # the tilted LiDAR frame drops a tiny vertical velocity component
            assert metrics[f'{name}_AVE'] < 0.05, name
            assert metrics[f'{name}_AAE'] == 0.0, name
    assert metrics['mAP'] == pytest.approx(len(present) / 10, abs=1e-9)
    tp = [max(0.0, 1 - metrics[f'm{k}']) for k in ('ATE', 'ASE', 'AOE', 'AVE', 'AAE')]
    assert metrics['NDS'] == pytest.approx((5 * metrics['mAP'] + sum(tp)) / 10, abs=1e-9)


def test_shift_and_rotation_show_in_tp_errors(data):
    """Per class present; absent classes have all errors 1 in the devkit's means."""
    root, ann_file, infos = data
    present = _present_classes(infos)
    shifted = _evaluate(root, ann_file, _gt_samples(infos, shift=(1.0, 0.0, 0.0)))
    assert shifted['mATE'] == pytest.approx(1.0, abs=1e-3)
    rotated = _evaluate(root, ann_file, _gt_samples(infos, dyaw=np.pi / 2))
    for name in present:
        assert shifted[f'{name}_ATE'] == pytest.approx(1.0, abs=1e-3), name
        assert shifted[f'{name}_ASE'] < 1e-6
        # AP at 0.5 m fails, the 1, 2, 4 m thresholds match
        assert shifted[f'{name}_AP'] == pytest.approx(0.75, abs=1e-9), name
        assert rotated[f'{name}_ATE'] < 1e-6 and rotated[f'{name}_AP'] == pytest.approx(1.0)
        if name not in NO_ORIENT:
            assert rotated[f'{name}_AOE'] == pytest.approx(np.pi / 2, abs=1e-3), name
    n_orient = len(present - NO_ORIENT)
    n_absent = len(set(CLASSES) - present)
    assert rotated['mAOE'] == pytest.approx(
        (n_orient * np.pi / 2 + n_absent) / (n_orient + n_absent), abs=1e-3)


def test_data_samples_duplicates_and_missing_samples(data, tmp_path):
    root, ann_file, infos = data
    reference = _evaluate(root, ann_file, _gt_samples(infos))
    samples = _gt_samples(infos, as_data_sample=True)
    # a padded sampler repeats samples; the result must not change
    metric = NuScenesMetric(data_root=root, ann_file=ann_file, version='v1.0-mini',
                            jsonfile_prefix=str(tmp_path / 'out'))
    metric.process({}, samples)
    metric.process({}, [s.to_dict() for s in samples[:2]])  # dicts as the Evaluator gives
    metrics = metric.compute_metrics(metric.results)
    for key in ('mAP', 'NDS', 'mATE', 'mAOE', 'car_AP'):
        assert metrics[key] == pytest.approx(reference[key], abs=1e-4), key
    with open(tmp_path / 'out' / 'results_nusc.json') as f:
        sub = json.load(f)
    assert set(sub['results']) == {i['token'] for i in infos}
    assert osp.isfile(tmp_path / 'out' / 'metrics_summary.json')
    box = sub['results'][infos[0]['token']][0]
    assert set(box) == {'sample_token', 'translation', 'size', 'rotation', 'velocity',
                        'detection_name', 'detection_score', 'attribute_name'}
    assert len(box['rotation']) == 4 and len(box['velocity']) == 2
    # a sample without predictions is still in the submission (empty list)
    metric = NuScenesMetric(data_root=root, ann_file=ann_file, version='v1.0-mini',
                            jsonfile_prefix=str(tmp_path / 'missing'))
    metric.process({}, _gt_samples(infos)[1:])
    partial = metric.compute_metrics(metric.results)
    with open(tmp_path / 'missing' / 'results_nusc.json') as f:
        assert json.load(f)['results'][infos[0]['token']] == []
    assert partial['mAP'] < reference['mAP']


def test_registry_build_and_prefix(data):
    root, ann_file, infos = data
    assert METRICS.get('NuScenesMetric') is NuScenesMetric
    metric = METRICS.build(dict(type='NuScenesMetric', data_root=root, ann_file=ann_file,
                                version='v1.0-mini'))
    metric.process({}, _gt_samples(infos))
    out = metric.evaluate(size=len(infos))
    assert {'NuScenes/NDS', 'NuScenes/mAP', 'NuScenes/mATE', 'NuScenes/car_AP'} <= set(out)
    assert all(k.startswith('NuScenes/') for k in out)


def test_format_only_writes_every_ann_token(data, tmp_path):
    root, ann_file, infos = data
    with pytest.raises(ValueError, match='jsonfile_prefix'):
        NuScenesMetric(data_root=root, ann_file=ann_file, format_only=True)
    metric = NuScenesMetric(data_root=root, ann_file=ann_file, version='v1.0-test',
                            format_only=True, jsonfile_prefix=str(tmp_path))
    metric.process({}, _gt_samples(infos)[:1])
    assert metric.compute_metrics(metric.results) == {}
    with open(tmp_path / 'results_nusc.json') as f:
        sub = json.load(f)
    assert set(sub['results']) == {i['token'] for i in infos}
    assert sub['meta']['use_camera'] is True


def test_no_boxes_at_all_reports_zeros(data):
    root, ann_file, infos = data
    samples = _gt_samples(infos)
    for s in samples:
        s['pred_instances_3d'] = dict(bboxes_3d=np.zeros((0, 9)), scores_3d=np.zeros(0),
                                      labels_3d=np.zeros(0, np.int64))
    metrics = _evaluate(root, ann_file, samples)
    assert metrics['mAP'] == 0.0 and metrics['NDS'] == 0.0 and metrics['mATE'] == 1.0


def test_bad_input_is_named(data, tmp_path):
    root, ann_file, infos = data
    samples = _gt_samples(infos[:1])
    samples[0]['pred_instances_3d']['bboxes_3d'] = np.zeros((2, 5))
    metric = NuScenesMetric(data_root=root, ann_file=ann_file, version='v1.0-mini')
    with pytest.raises(ValueError, match=rf"{infos[0]['token']}.*\(M, 9\).*\(2, 5\)"):
        metric.process({}, samples)
    with pytest.raises(KeyError, match='lidar2ego'):
        metric.process({}, [dict(token='x', pred_instances_3d={})])
    with pytest.raises(FileNotFoundError, match='missing.pkl'):
        _evaluate(root, str(tmp_path / 'missing.pkl'), _gt_samples(infos))
    with pytest.raises(FileNotFoundError, match='nowhere'):
        _evaluate(str(tmp_path / 'nowhere'), ann_file, _gt_samples(infos))
    wrong = _gt_samples(infos[:1])
    wrong[0]['token'] = 'not-a-val-token'
    with pytest.raises(ValueError, match='not in eval set'):
        _evaluate(root, None, wrong)
    with pytest.raises(ValueError, match='eval_set'):
        NuScenesMetric(data_root=root, version='v1.0-test')


def test_default_attribute():
    assert default_attribute('car', 5.0) == 'vehicle.moving'
    assert default_attribute('car', 0.1) == 'vehicle.parked'
    assert default_attribute('bus', 0.0) == 'vehicle.stopped'
    assert default_attribute('bicycle', 1.0) == 'cycle.with_rider'
    assert default_attribute('motorcycle', 0.0) == 'cycle.without_rider'
    assert default_attribute('pedestrian', 1.0) == 'pedestrian.moving'
    assert default_attribute('pedestrian', 0.0) == 'pedestrian.standing'
    assert default_attribute('barrier', 3.0) == ''
    assert default_attribute('truck', float('nan')) == 'vehicle.parked'
