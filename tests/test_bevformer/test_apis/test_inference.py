"""The inference API on the real key frame: the inferencer predicts what the dataset path
(tools/test.py) predicts, carries the BEV across a sequence, draws, and names bad
calibration; demo/multiview_demo.py runs end to end."""
import copy
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

import projects.bevformer  # noqa: F401
from mmdet.registry import DATASETS
from projects.bevformer.apis import (BEVFormerInferencer, CalibrationError, frame_to_results,
                                     init_model, load_frame)
from projects.common.checkpoint import atomic_save_checkpoint
from tests.shared_data import REAL_SAMPLE_DIR, REPO_ROOT as REPO
from tests.test_bevformer.bev_data_helpers import real_sample_info, write_infos
from tests.test_bevformer.tiny_bevformer import tiny_cfg

FRAME = osp.join(REPO, 'demo', 'data', 'nuscenes_keyframe.json')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny model (random weights, saved as a checkpoint) with a 0.2-scale test pipeline."""
    tmp = tmp_path_factory.mktemp('apis')
    cfg = tiny_cfg(str(tmp))
    pipeline = [dict(t, scale_factor=0.2) if t['type'] == 'MultiViewResize' else t
                for t in cfg.test_dataloader.dataset.pipeline]
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.pipeline = pipeline
    cfg_path = str(tmp / 'tiny.py')
    cfg.dump(cfg_path)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = init_model(cfg_path)
    ckpt = str(tmp / 'tiny.pth')
    atomic_save_checkpoint(dict(meta=dict(dataset_meta=dict(classes=list(cfg.class_names))),
                                state_dict=model.state_dict()), ckpt)
    return cfg, cfg_path, ckpt, tmp


def test_inferencer_equals_the_dataset_path(setup):
    cfg, cfg_path, ckpt, tmp = setup
    # The dataset path (what tools/test.py runs): the info file of the same key frame.
    model = init_model(cfg_path, ckpt)
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    ds_cfg.update(ann_file=write_infos(real_sample_info(), str(tmp / 'real.pkl')),
                  data_root=REAL_SAMPLE_DIR)
    ds = DATASETS.build(ds_cfg)
    model.reset_video_state()
    with torch.no_grad():
        want = model.test_step(pseudo_collate([ds[0]]))[0].pred_instances_3d

    inferencer = BEVFormerInferencer(cfg_path, ckpt)
    got = inferencer(FRAME)['predictions'][0]
    assert got['bboxes_3d'].shape == (len(want.scores_3d), 9)
    np.testing.assert_allclose(got['scores_3d'], want.scores_3d.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got['bboxes_3d'], want.bboxes_3d.numpy(), rtol=1e-4, atol=1e-4)
    assert got['label_names'][0] in cfg.class_names
    assert got['boxes_global']['center'].shape == (len(got['scores_3d']), 3)


def test_sequence_carries_the_bev_and_a_new_scene_resets(setup):
    _, cfg_path, ckpt, tmp = setup
    inferencer = BEVFormerInferencer(cfg_path, ckpt)
    first = load_frame(FRAME)
    second = copy.deepcopy(first)
    second.update(token='next', timestamp=first['timestamp'] + 0.5)
    moved = np.array(second['ego2global'])
    moved[:3, 3] += [1.0, 0.5, 0.0]  # the ego moved: frame 2 uses frame 1's BEV, aligned
    second['ego2global'] = moved.tolist()
    out = inferencer([first, second], return_datasamples=True)['predictions']
    fresh = BEVFormerInferencer(cfg_path, ckpt)([second])['predictions'][0]
    # With history the scores differ from the same frame without it.
    assert not np.allclose(out[1].pred_instances_3d.scores_3d.numpy(), fresh['scores_3d'])
    assert out[1].metainfo['prev_exists'] is True and out[0].metainfo['prev_exists'] is False
    # Another scene starts without history: equal to a fresh inferencer.
    other = dict(copy.deepcopy(second), scene='another-drive')
    again = inferencer([other])['predictions'][0]
    np.testing.assert_allclose(again['scores_3d'], fresh['scores_3d'], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='batch_size must be 1'):
        inferencer([first, second], batch_size=2)


def test_arrays_and_pictures(setup):
    _, cfg_path, ckpt, tmp = setup
    import mmcv
    frame = load_frame(FRAME)
    by_path = BEVFormerInferencer(cfg_path, ckpt)(frame)['predictions'][0]
    for cam in frame['cameras'].values():
        cam['image'] = mmcv.imread(cam['image'])
    out = BEVFormerInferencer(cfg_path, ckpt)(frame, out_dir=str(tmp / 'vis'), score_thr=0.0)
    np.testing.assert_allclose(out['predictions'][0]['scores_3d'], by_path['scores_3d'])
    assert osp.isfile(out['visualization'][0])


@pytest.mark.parametrize('edit, message', [
    (lambda f: f['cameras'].pop('CAM_BACK'), r"cameras \['CAM_BACK'\] are missing"),
    (lambda f: f['cameras']['CAM_FRONT'].update(intrinsics=[[1, 0], [0, 1]]),
     r'cameras.CAM_FRONT.intrinsics must have shape \(3, 3\), got \(2, 2\)'),
    (lambda f: f['cameras']['CAM_FRONT'].update(cam2ego=np.zeros((4, 4)).tolist()),
     r'cameras.CAM_FRONT.cam2ego rotation is not a rotation'),
    (lambda f: f.update(ego2global=np.full((4, 4), np.nan).tolist()),
     r'ego2global has non-finite values'),
    (lambda f: f['cameras']['CAM_FRONT'].update(intrinsics=np.diag([0, 0, 1.0]).tolist()),
     r'cameras.CAM_FRONT.intrinsics focal lengths must be > 0'),
    (lambda f: f.pop('ego2global'), r'"ego2global" \(4x4 ego pose\) is missing'),
])
def test_bad_calibration_is_named(edit, message):
    frame = load_frame(FRAME)
    edit(frame)
    with pytest.raises(CalibrationError, match=message):
        frame_to_results(frame, name='my_rig.json')


def test_calibration_reproduces_the_info_file_geometry():
    """The schema's camera-to-ego + per-camera ego pose give the converter's lidar2img."""
    res = frame_to_results(load_frame(FRAME))
    info = real_sample_info()['data_list'][0]
    for i, cam in enumerate(res['cam_names']):
        np.testing.assert_allclose(res['lidar2img'][i], info['cams'][cam]['lidar2img'],
                                   rtol=1e-9, atol=1e-6)


def test_demo_script(setup, capsys):
    _, cfg_path, ckpt, tmp = setup
    import importlib.util
    spec = importlib.util.spec_from_file_location('demo', osp.join(REPO, 'demo',
                                                                   'multiview_demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out_dir = str(tmp / 'demo_out')
    assert demo.main([FRAME, cfg_path, ckpt, '--out-dir', out_dir, '--score-thr', '0.0']) == 0
    printed = capsys.readouterr().out
    assert 'nuscenes_keyframe.json' in printed and 'boxes with score >= 0.0' in printed
    with open(osp.join(out_dir, 'predictions.json')) as f:
        summary = json.load(f)
    assert summary[0]['boxes'] and osp.isfile(summary[0]['picture'])
