"""The tools name the culprit: misspelled config keys, malformed --cfg-options, a checkpoint
that does not fit (tools/test.py, with --partial-load to accept it), an evaluator that does
not fit the dataroot (before inference), NaN predictions (after --out is written)."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator

import projects.common  # noqa: F401
from projects.common import CheckpointMismatchError, misspelled_keys
from tests.test_tools.conftest import REPO, load_tool

QUICKSTART = osp.join(REPO, 'configs/bevformer/bevformer_quickstart_synthetic.py')


@pytest.fixture(scope='module')
def tools():
    return load_tool('tools/train.py'), load_tool('tools/test.py')


def test_misspelled_top_level_keys_are_named(tools, tmp_path):
    train, test = tools
    with pytest.raises(KeyError, match=r"'trian_cfg' \(did you mean 'train_cfg'\?\)"):
        train.build_cfg(train.parse_args([QUICKSTART, '--cfg-options', 'trian_cfg.max_iters=3']))
    config = tmp_path / 'typo.py'
    config.write_text(f"_base_ = '{QUICKSTART}'\noptim_wraper = dict(clip_grad=None)\n")
    with pytest.raises(KeyError, match=r"typo.py: unknown top-level key 'optim_wraper' \(did "
                       r"you mean 'optim_wrapper'\?\)"):
        train.build_cfg(train.parse_args([str(config)]))
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(KeyError, match="did you mean 'test_evaluator'"):
        test.build_cfg(test.parse_args([QUICKSTART, str(ckpt), '--cfg-options',
                                        'test_evalutor.format_only=True']))
    # helper variables of our configs are not flagged
    for name in ('bev_h', 'embed_dims', 'train_pipeline', 'data_root', 'max_iters'):
        assert not misspelled_keys([name])


def test_cfg_options_item_without_equals_is_named(tools, capsys):
    train, _ = tools
    with pytest.raises(SystemExit):
        train.parse_args([QUICKSTART, '--cfg-options', 'train_cfg.max_iters', 'a=1'])
    err = capsys.readouterr().err
    assert "--cfg-options: 'train_cfg.max_iters' is not of the form key=value" in err


def test_test_py_refuses_a_checkpoint_of_another_config(tools, tiny_config, tmp_path,
                                                        fast_config_text):
    """Size mismatches are named; --partial-load evaluates anyway (the rest keeps its init)."""
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    _, test = tools
    with DefaultScope.overwrite_default_scope('mmdet'):
        state = MODELS.build(Config.fromfile(tiny_config).model).state_dict()
    key = next(k for k, v in state.items() if v.dim() == 2)  # e.g. an embedding
    state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
    ckpt = str(tmp_path / 'other_config.pth')
    torch.save({'state_dict': state, 'meta': {}}, ckpt)
    args = [tiny_config, ckpt, '--work-dir', str(tmp_path / 'work')]
    with pytest.raises(CheckpointMismatchError, match=rf'other_config.pth does not fit the '
                       rf'model(.|\n)*shape mismatch \(1\): {key}'):
        test.main(args)
    metrics = test.main(args + ['--partial-load'])
    assert 'NuScenes/NDS' in metrics


def test_evaluator_that_does_not_fit_the_dataroot_fails_before_inference(
        tools, tiny_config, tiny_root, tmp_path, fast_config_text):
    _, test = tools
    ckpt = tmp_path / 'unused.pth'
    ckpt.write_bytes(b'')  # never loaded: the check runs when the test loop is built
    with pytest.raises(FileNotFoundError, match=r"no nuScenes tables at .*v1.0-trainval "
                       r"\(version='v1.0-trainval'\); .* has \['v1.0-mini'\]"):
        test.main([tiny_config, str(ckpt), '--work-dir', str(tmp_path / 'work'),
                   '--cfg-options', 'test_evaluator.version=v1.0-trainval'])

    from projects.bevformer.evaluation import NuScenesMetric
    metric = NuScenesMetric(data_root=tiny_root, ann_file=f'{tiny_root}/nuscenes_infos_val.pkl',
                            version='v1.0-mini')
    metric.dataset_meta = {'version': 'v1.0-mini'}  # fits
    with pytest.raises(ValueError, match=r"info file is 'v1.0-trainval', the evaluator is "
                       r"'v1.0-mini'"):
        metric.dataset_meta = {'version': 'v1.0-trainval'}
    wrong_split = NuScenesMetric(data_root=tiny_root, version='v1.0-mini',
                                 ann_file=f'{tiny_root}/nuscenes_infos_train.pkl')
    with pytest.raises(ValueError, match=r"4 of the 4 samples of .*nuscenes_infos_train.pkl are "
                       r"not in eval_set 'mini_val'"):
        wrong_split.dataset_meta = {'version': 'v1.0-mini'}


def test_out_is_written_before_a_failing_metric_names_the_nan_samples(tools, tiny_root,
                                                                      tmp_path):
    _, test = tools
    cfg = Config(dict(test_evaluator=dict(type='NuScenesMetric')))
    out = str(tmp_path / 'preds.pkl')
    test.add_dump(cfg, out)
    assert [m['type'] for m in cfg.test_evaluator] == ['DumpResults', 'NuScenesMetric']

    from projects.bevformer.evaluation import NuScenesMetric
    from projects.bevformer.visualization.predictions import load_predictions
    infos = projects.common.safe_pickle_load(f'{tiny_root}/nuscenes_infos_val.pkl')
    evaluator = Evaluator([
        dict(type='DumpResults', out_file_path=out),
        NuScenesMetric(data_root=tiny_root, ann_file=f'{tiny_root}/nuscenes_infos_val.pkl',
                       version='v1.0-mini', jsonfile_prefix=str(tmp_path / 'sub'))])
    samples = []
    for i, info in enumerate(infos['data_list']):
        boxes = np.tile([10.0, 0, -1, 4, 2, 1.5, 0, 0, 0], (2, 1))
        if i in (1, 3):
            boxes[0, 0] = math.nan
        samples.append(dict(token=info['token'], lidar2ego=info['lidar2ego'],
                            ego2global=info['ego2global'],
                            pred_instances_3d=dict(bboxes_3d=torch.tensor(boxes),
                                                   scores_3d=torch.tensor([0.9, 0.5]),
                                                   labels_3d=torch.tensor([0, 0]))))
    evaluator.process(samples)
    bad = sorted(infos['data_list'][i]['token'] for i in (1, 3))
    with pytest.raises(ValueError, match=rf'2 of 4 samples have NaN / inf predicted boxes or '
                       rf'scores.*: {bad[0]}, {bad[1]}'):
        evaluator.evaluate(4)
    assert len(load_predictions(out)) == 4  # --out is on disk all the same
    assert osp.isfile(tmp_path / 'sub' / 'results_nusc.json')
