"""Training: a non-finite loss or gradient stops the run (or is skipped on request) without a
poisoned checkpoint, and --resume reproduces the uninterrupted run exactly."""
import math
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import projects.common  # noqa: F401
from projects.common import NonFiniteCheckHook, NonFiniteLossError, add_reliability_hooks
from tests.test_tools.conftest import REPO, ToyData, load_tool, toy_runner


def _all_finite(path: str) -> bool:
    state = projects.common.read_checkpoint(path)['state_dict']
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def test_nan_loss_stops_training_before_a_poisoned_checkpoint(tmp_path):
    work = str(tmp_path)
    # batch 2, no shuffle: iteration 3 holds samples 4 and 5; sample 5's input is NaN
    runner = toy_runner(work, max_iters=6, dataset=ToyData(nan_input=[5]),
                        custom_hooks=[NonFiniteCheckHook()])
    with pytest.raises(NonFiniteLossError, match=r'non-finite loss loss=nan at iteration 3 '
                       r'\(samples: tok4, tok5\)'):
        runner.train()
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == ['iter_1.pth',
                                                                          'iter_2.pth']
    assert _all_finite(osp.join(work, 'iter_2.pth'))
    # the weights in memory were not updated by the bad iteration either
    assert all(bool(torch.isfinite(p).all()) for p in runner.model.parameters())


def test_nan_gradient_with_a_finite_loss_stops_before_the_step(tmp_path):
    runner = toy_runner(str(tmp_path), max_iters=4, dataset=ToyData(nan_grad=[2]),
                        custom_hooks=[NonFiniteCheckHook()])
    with pytest.raises(NonFiniteLossError, match=r'non-finite gradient in 1 parameter\(s\): '
                       r'fc.weight at iteration 2 \(samples: tok2, tok3\)'):
        runner.train()
    assert all(bool(torch.isfinite(p).all()) for p in runner.model.parameters())


def test_skip_action_drops_the_bad_iteration_and_carries_on(tmp_path):
    hook = NonFiniteCheckHook(action='skip')
    runner = toy_runner(str(tmp_path), max_iters=5, dataset=ToyData(nan_input=[5]),
                        custom_hooks=[hook])
    runner.train()
    assert hook.num_skipped == 1
    assert _all_finite(osp.join(str(tmp_path), 'iter_5.pth'))  # incl. BN running stats
    # AdamW stepped 4 times, not 5: the skipped update did not happen at all
    assert int(runner.optim_wrapper.optimizer.state_dict()['state'][0]['step']) == 4


def test_a_checkpoint_with_non_finite_weights_is_refused():
    hook = NonFiniteCheckHook()

    class _Runner:
        iter = 6

    state = {'a.weight': torch.ones(2), 'b.weight': torch.tensor([1.0, math.nan]),
             'n': torch.tensor(3)}
    with pytest.raises(NonFiniteLossError, match=r'iteration 7: 1 of 3 tensors hold NaN / inf '
                       r'\(e.g. b.weight\)'):
        hook.before_save_checkpoint(_Runner(), {'state_dict': state})


def test_every_training_config_gets_the_reliability_hooks():
    runtime = Config.fromfile(osp.join(REPO, 'configs/bevformer/bevformer_quickstart_synthetic.py'))
    assert runtime.default_hooks.finite_check.type == 'NonFiniteCheckHook'
    assert runtime.default_hooks.rng_state.type == 'RNGStateHook'
    # a config without our default_runtime (mmdet's COCO base) gets them from tools/train.py
    coco = Config.fromfile(osp.join(REPO, 'configs/deformable_detr/'
                                    'deformable-detr_r50_16xb2-50e_coco.py'))
    assert 'finite_check' not in coco.default_hooks
    add_reliability_hooks(coco)
    assert coco.default_hooks.finite_check.type == 'NonFiniteCheckHook'
    assert coco.default_hooks.rng_state.type == 'RNGStateHook'


def test_resume_reproduces_the_uninterrupted_run_exactly(tiny_config, tmp_path,
                                                         fast_config_text):
    """GridMask, dropout and random queue sampling on; no seed in the config; a validation
    right after the checkpoint the run is resumed from."""
    train = load_tool('tools/train.py')
    opts = ['train_cfg.max_iters=4', 'train_cfg.val_interval=2',
            'default_hooks.checkpoint.max_keep_ckpts=-1']
    cfg = Config.fromfile(tiny_config)
    assert cfg.model.use_grid_mask and cfg.train_dataloader.dataset.queue_sampling == 'random'
    assert cfg.model.heads.det.decoder.layer_cfg.ffn_cfg.ffn_drop > 0
    assert 'seed' not in (cfg.get('randomness') or {})

    full, resumed = str(tmp_path / 'full'), str(tmp_path / 'resumed')
    train.main([tiny_config, '--work-dir', full, '--cfg-options', *opts,
                'experiment_name=full'])
    # "interrupted" after iteration 2: a work dir holding only that checkpoint
    os.makedirs(resumed)
    os.link(osp.join(full, 'iter_2.pth'), osp.join(resumed, 'iter_2.pth'))
    with open(osp.join(resumed, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(resumed, 'iter_2.pth'))
    train.main([tiny_config, '--work-dir', resumed, '--resume', '--cfg-options', *opts,
                'experiment_name=resumed'])

    a = projects.common.read_checkpoint(osp.join(full, 'iter_4.pth'))
    b = projects.common.read_checkpoint(osp.join(resumed, 'iter_4.pth'))
    losses_a = a['message_hub']['log_scalars']['train/loss']._log_history
    losses_b = b['message_hub']['log_scalars']['train/loss']._log_history
    assert len(losses_a) == 4
    assert losses_b.tolist() == losses_a.tolist()  # iterations 3 and 4 bit for bit
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
