"""NuScenesBEVDataset (datasets/nuscenes_dataset.py) on hand-made infos (``synth`` in
tests/test_bevformer/conftest.py), the real key frame and the synthetic dataroot: items,
queues, filters, info-file errors, the dataset configs."""
import copy
import importlib.util

import numpy as np
import pytest
import torch
from mmdet.registry import DATA_SAMPLERS, DATASETS, MODELS
from mmengine.config import Config
from mmengine.registry import DATA_SAMPLERS as ENGINE_SAMPLERS
from mmengine.registry import DATASETS as ENGINE_DATASETS
from mmengine.registry import MODELS as ENGINE_MODELS

from projects.bevformer.datasets import CAMERAS, InfoFormatError, NuScenesBEVDataset
from projects.bevformer.models.data_preprocessors import BEVDataPreprocessor
from projects.bevformer.structures import Det3DDataSample
from tests.test_bevformer.bev_data_helpers import (REAL_SAMPLE_DIR, make_synthetic_dataroot,
                                                   real_sample_info, write_infos)
from tests.test_bevformer.bev_data_helpers import SYNTH_FRAMES as FRAMES
from tests.test_bevformer.bev_data_helpers import SYNTH_PIPELINE as PIPELINE
from tests.test_bevformer.bev_data_helpers import synth_dataset as _dataset

PC_RANGE = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]


def _scene_of(frame):
    return int(np.searchsorted(np.cumsum(FRAMES), frame, side='right'))


def test_registered_without_collisions():
    assert DATASETS.get('NuScenesBEVDataset') is NuScenesBEVDataset
    assert 'NuScenesBEVDataset' not in ENGINE_DATASETS.module_dict
    assert DATA_SAMPLERS.get('ContiguousVideoSampler') is not None
    assert 'ContiguousVideoSampler' not in ENGINE_SAMPLERS.module_dict
    assert MODELS.get('BEVDataPreprocessor') is BEVDataPreprocessor
    assert 'BEVDataPreprocessor' not in ENGINE_MODELS.module_dict


def test_item_structure(synth):
    ds = _dataset(synth, queue_sampling='consecutive')
    # s1f1 has no valid box of a kept class: filtered out in training.
    assert len(ds) == sum(FRAMES) - 1
    item = ds[5]  # frame 6 = s1f2: queue s1f0, s1f1, s1f2
    img = item['inputs']['img']
    assert img.shape == (3, 6, 3, 24, 32) and img.dtype == torch.float32  # padded later
    sample = item['data_samples']
    assert isinstance(sample, Det3DDataSample)
    assert sample.token == 's1f2' and sample.scene_token == 'scene1' and sample.frame_idx == 2
    assert [h['token'] for h in sample.history] == ['s1f0', 's1f1']
    assert item['inputs']['prev_exists'].tolist() == [False, True, True]
    assert sample.prev_exists is True
    gt = sample.gt_instances_3d
    # car and pedestrian kept; the truck at x=70 m is out of range
    assert gt.labels_3d.tolist() == [0, 8] and gt.labels_3d.dtype == torch.long
    assert gt.bboxes_3d.shape == (2, 9) and gt.bboxes_3d.dtype == torch.float32
    assert torch.isnan(gt.bboxes_3d[1, 7:]).all()  # unknown velocity stays NaN (masked in the loss)
    # geometry after the 0.5 resize; history geometry is the earlier frame's
    raw = ds._frame_info(6)
    np.testing.assert_allclose(sample.lidar2img[:, :2], raw['lidar2img'][:, :2] * 0.5)
    assert sample.lidar2img.shape == (6, 4, 4) and sample.lidar2img.dtype == np.float64
    assert sample.img_shape == (24, 32)
    # the per-frame geometry tensors (T, ...): history frames first, current last
    geo = item['inputs']
    assert geo['lidar2img'].shape == (3, 6, 4, 4) and geo['lidar2img'].dtype == torch.float64
    np.testing.assert_allclose(geo['lidar2img'][-1].numpy(), sample.lidar2img)
    np.testing.assert_allclose(geo['lidar2global'][0].numpy(), ds._frame_info(4)['lidar2global'])
    np.testing.assert_allclose(geo['can_bus'][1].numpy(), ds._frame_info(5)['can_bus'])
    assert geo['img_shape'].tolist() == [[24, 32]] * 3 and geo['img_shape'].dtype == torch.long
    for key in ('lidar2ego', 'ego2global', 'lidar2global'):
        assert getattr(sample, key).shape == (4, 4)
    # frames differ -> images differ (random images per frame)
    assert not torch.equal(img[0], img[2])


@pytest.mark.parametrize('mode', ['random', 'consecutive'])
@pytest.mark.parametrize('queue_length', [2, 3, 4])
def test_queue_sampling(synth, mode, queue_length):
    ds = _dataset(synth, queue_length=queue_length, queue_sampling=mode, filter_empty_gt=False)
    np.random.seed(0)
    starts = np.concatenate([[0], np.cumsum(FRAMES)[:-1]])
    for _ in range(5):
        for idx in range(len(ds)):
            frames = ds.queue_frames(idx)
            cur = int(ds._items[idx])
            start = starts[_scene_of(cur)]
            assert len(frames) == queue_length and frames[-1] == cur
            assert frames == sorted(frames)
            assert all(_scene_of(f) == _scene_of(cur) for f in frames)
            assert all(f >= cur - queue_length for f in frames)
            if mode == 'consecutive':
                assert frames == [max(f, start) for f in range(cur - queue_length + 1, cur + 1)]
            flags = ds.prev_exists(frames)
            assert flags[0] is False
            for a, b, flag in zip(frames[:-1], frames[1:], flags[1:]):
                assert flag == (a != b)


def test_random_queue_is_bevformer_sampling(synth):
    """Away from scene starts: T - 1 of the T frames before idx, all T choices occur."""
    ds = _dataset(synth, queue_length=3, filter_empty_gt=False)
    np.random.seed(1)
    seen = {tuple(ds.queue_frames(11)) for _ in range(60)}  # frame 11 = s2f4, start 7
    assert seen == {(8, 9, 11), (8, 10, 11), (9, 10, 11)}
    # at a scene start, earlier frames clamp to it and are marked as without predecessor
    frames = ds.queue_frames(7)
    assert frames == [7, 7, 7] and ds.prev_exists(frames) == [False, False, False]
    item = ds[7]
    assert item['data_samples'].prev_exists is False
    assert [h['token'] for h in item['data_samples'].history] == ['s2f0', 's2f0']


def test_test_mode_video_order(synth):
    ds = _dataset(synth, queue_length=1, test_mode=True)
    assert len(ds) == sum(FRAMES)  # nothing filtered in test mode
    tokens, flags = [], []
    for i in range(len(ds)):
        item = ds[i]
        s = item['data_samples']
        assert item["inputs"]["img"].shape == (1, 6, 3, 24, 32)
        assert s.history == []
        tokens.append(s.token)
        flags.append(s.prev_exists)
    infos = ds.load_data_list()
    assert tokens == [f['token'] for f in infos]
    assert flags == [f['prev'] != '' for f in infos]


def test_class_filter_velocity_and_interval(synth):
    ds = _dataset(synth, metainfo=dict(classes=['pedestrian', 'car']), queue_length=1,
                  filter_empty_gt=False)
    assert ds.metainfo['classes'] == ['pedestrian', 'car']
    assert ds.metainfo['cameras'] == list(CAMERAS)
    info = ds.get_data_info(0)
    assert info['gt_labels_3d'].tolist() == [1, 0, -1]  # car, pedestrian, truck (dropped)
    assert ds[0]['data_samples'].gt_instances_3d.labels_3d.tolist() == [1, 0]
    ds = _dataset(synth, with_velocity=False, queue_length=1)
    assert ds[0]['data_samples'].gt_instances_3d.bboxes_3d.shape == (2, 7)
    ds = _dataset(synth, load_interval=2, queue_length=2, queue_sampling='consecutive',
                  filter_empty_gt=False)
    assert [ds.get_data_info(i)['token'] for i in range(len(ds))] == [
        's0f0', 's0f2', 's1f0', 's1f2', 's2f1', 's2f3']
    # s1f0 (frame 2 of the subsampled list) starts its scene; s2f1 starts scene 2 here
    assert ds.prev_exists(ds.queue_frames(2)) == [False, False]
    assert ds.prev_exists(ds.queue_frames(3)) == [False, True]
    assert ds.queue_frames(4) == [4, 4]


def test_filter_empty_refetches_after_pipeline(synth):
    # With a tiny range every frame loses all boxes in the pipeline: training refetches
    # until max_refetch and then raises; test mode returns empty GT.
    pipe = copy.deepcopy(PIPELINE)
    pipe[1]['point_cloud_range'] = [-0.1, -0.1, -5, 0.1, 0.1, 3]
    ds = _dataset(synth, pipeline=pipe, queue_length=1, max_refetch=3)
    with pytest.raises(Exception, match='Cannot find valid'):
        ds[0]
    ds = _dataset(synth, pipeline=pipe, queue_length=1, test_mode=True)
    assert len(ds[0]['data_samples'].gt_instances_3d) == 0


def _mutate(infos, index, fn):
    infos = copy.deepcopy(infos)
    fn(infos['data_list'][index])
    return infos


@pytest.mark.parametrize('mutation, pattern', [
    (lambda f: f.pop('can_bus'), r"sample 2 \(token s0f2\): key 'can_bus' is missing"),
    (lambda f: f['cams']['CAM_BACK'].pop('lidar2img'),
     r"sample 2 \(token s0f2\): key 'cams.CAM_BACK.lidar2img' is missing"),
    (lambda f: f['cams'].pop('CAM_FRONT_LEFT'), r"key 'cams.CAM_FRONT_LEFT' is missing"),
    (lambda f: f['instances'][1].pop('valid_flag'), r"'instances\[1\].valid_flag' is missing"),
    (lambda f: f.update(lidar2ego=np.eye(3)), r"'lidar2ego' has shape \(3, 3\), expected"),
    (lambda f: f['instances'][0].update(label=12), 'beyond the 10 info classes'),
])
def test_malformed_info_names_sample_and_key(synth, tmp_path, mutation, pattern):
    import mmengine
    infos = mmengine.load(synth[1])
    bad = write_infos(_mutate(infos, 2, mutation), str(tmp_path / 'bad.pkl'))
    with pytest.raises(InfoFormatError, match=pattern):
        NuScenesBEVDataset(ann_file=bad, data_root=synth[0], pipeline=PIPELINE)


def test_bad_info_files(synth, tmp_path):
    import mmengine
    with pytest.raises(FileNotFoundError, match='missing.pkl'):
        NuScenesBEVDataset(ann_file=str(tmp_path / 'missing.pkl'))
    mmengine.dump([1, 2], str(tmp_path / 'list.pkl'))
    with pytest.raises(InfoFormatError, match='metainfo and data_list'):
        NuScenesBEVDataset(ann_file=str(tmp_path / 'list.pkl'))
    infos = mmengine.load(synth[1])
    shuffled = copy.deepcopy(infos)
    shuffled['data_list'][1], shuffled['data_list'][2] = (shuffled['data_list'][2],
                                                          shuffled['data_list'][1])
    with pytest.raises(InfoFormatError, match=r'sorted.*sample 2 \(token s0f1\)'):
        NuScenesBEVDataset(ann_file=write_infos(shuffled, str(tmp_path / 's.pkl')))
    split = copy.deepcopy(infos)
    split['data_list'].append(copy.deepcopy(split['data_list'][0]))
    with pytest.raises(InfoFormatError, match='not contiguous'):
        NuScenesBEVDataset(ann_file=write_infos(split, str(tmp_path / 'c.pkl')))


def test_missing_image_names_file(synth, tmp_path):
    import mmengine
    infos = mmengine.load(synth[1])
    infos['data_list'][0]['cams']['CAM_BACK']['img_path'] = 'samples/CAM_BACK/gone.jpg'
    ds = NuScenesBEVDataset(ann_file=write_infos(infos, str(tmp_path / 'g.pkl')),
                            data_root=synth[0], pipeline=PIPELINE, test_mode=True)
    with pytest.raises(FileNotFoundError, match='gone.jpg'):
        ds[0]


# ------------------------------------------------------------------ real data / configs
def test_real_sample_through_dataset(tmp_path):
    path = write_infos(real_sample_info(), str(tmp_path / 'real.pkl'))
    pipe = [dict(type='LoadMultiViewImages'),
            dict(type='FilterBEVInstances', point_cloud_range=PC_RANGE),
            dict(type='MultiViewResize', scale_factor=0.25),
            dict(type='PackBEVInputs')]
    ds = NuScenesBEVDataset(ann_file=path, data_root=REAL_SAMPLE_DIR, pipeline=pipe,
                            queue_length=1, test_mode=True)
    item = ds[0]
    assert item["inputs"]["img"].shape == (1, 6, 3, 225, 400)
    info = real_sample_info()['data_list'][0]
    expect = [i for i in info['instances'] if i['label'] >= 0 and i['valid_flag']
              and abs(i['bbox_3d'][0]) < 51.2 and abs(i['bbox_3d'][1]) < 51.2]
    gt = item['data_samples'].gt_instances_3d
    assert len(gt) == len(expect) > 20
    assert item['data_samples'].prev_exists is False


@pytest.mark.parametrize('name', ['nuscenes.py', 'nuscenes_synthetic.py'])
def test_dataset_configs_load_and_build_pipeline(name):
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(f'configs/_base_/datasets/{name}')
    with DefaultScope.overwrite_default_scope('mmdet'):
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            ds_cfg = cfg[key]['dataset']
            assert ds_cfg['type'] == 'NuScenesBEVDataset'
            Compose(ds_cfg['pipeline'])
    assert cfg.train_dataloader.dataset.queue_length >= 1
    assert cfg.test_dataloader.dataset.queue_length == 1


def _helper3_generator():
    return importlib.util.find_spec('projects.bevformer.synthetic')


@pytest.mark.skipif(_helper3_generator() is None, reason='synthetic generator not available')
def test_synthetic_dataroot_round_trip(tmp_path):
    """Generator -> create_data infos -> dataset with the quickstart config's pipeline."""
    root, infos = make_synthetic_dataroot(str(tmp_path), num_scenes=2, frames_per_scene=3)
    cfg = Config.fromfile('configs/_base_/datasets/nuscenes_synthetic.py')
    ds = NuScenesBEVDataset(ann_file=infos['train'], data_root=root, queue_length=3,
                            queue_sampling='consecutive', pipeline=cfg.train_pipeline)
    item = ds[len(ds) - 1]
    assert item['inputs']['img'].shape == (3, 6, 3, 90, 160)  # the preprocessor pads
    sample = item['data_samples']
    assert sample.frame_idx == 2 and sample.prev_exists is True
    assert [h['frame_idx'] for h in sample.history] == [0, 1]
    assert all(h['scene_token'] == sample.scene_token for h in sample.history)
    gt = sample.gt_instances_3d
    assert len(gt) > 0 and gt.bboxes_3d.shape[1] == 9 and torch.isfinite(gt.bboxes_3d).all()
    # Every GT box centre kept by the filter projects into at least one camera.
    from projects.bevformer.geometry.camera import project_points, visibility_mask
    centres = gt.bboxes_3d[:, :3].double().numpy().copy()
    centres[:, 2] += gt.bboxes_3d[:, 5].double().numpy() / 2
    uv, d = project_points(centres, sample.lidar2img)
    assert visibility_mask(uv, d, sample.img_shape).any(0).mean() > 0.9
    test_ds = NuScenesBEVDataset(ann_file=infos['val'], data_root=root, queue_length=1,
                                 test_mode=True, pipeline=cfg.test_pipeline)
    flags = [test_ds[i]['data_samples'].prev_exists for i in range(len(test_ds))]
    assert flags == [False, True, True]


def test_synthetic_defaults_agree_with_the_quickstart_config():
    """The generator's default dataroot, quickstart.sh and the synthetic dataset config name
    the same release layout, and the default has enough training scenes not to be memorised."""
    import re

    from tools.create_synthetic_nuscenes import parse_args
    args = parse_args(['--root', 'unused'])
    cfg = Config.fromfile('configs/_base_/datasets/nuscenes_synthetic.py')
    assert cfg.val_evaluator.version == cfg.test_evaluator.version == args.version
    script = open('tools/quickstart.sh').read()
    assert re.findall(r'--version (\S+)', script) == [args.version]
    assert f'{args.version}/sample.json' in script
    from projects.bevformer.synthetic.scenes import scene_names
    splits = [split for _, split in scene_names(args.version, args.num_scenes,
                                                args.num_val_scenes)]
    assert splits.count('train') >= 40 and splits.count('val') >= 10
