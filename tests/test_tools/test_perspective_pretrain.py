"""The perspective pretraining stage through tools/train.py, and a BEVFormer config starting
its backbone and neck from the result (init_cfg Pretrained with a prefix)."""
import os
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import projects.bevformer  # noqa: F401
from mmdet.registry import MODELS
from projects.common.checkpoint import safe_load_checkpoint
from tests.test_bevformer.bev_data_helpers import make_synthetic_dataroot

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRETRAIN = 'configs/bevformer/pretrain/perspective_pretrain_quickstart_synthetic.py'
FROM_PRETRAINED = 'configs/bevformer/bevformer_quickstart_synthetic.py'
FROZEN = 'configs/bevformer/ablations/quickstart_frozen_backbone.py'


def test_pretrain_then_start_bevformer_from_it(tmp_path):
    root, _ = make_synthetic_dataroot(str(tmp_path / 'data'), num_scenes=2, frames_per_scene=3)
    work = str(tmp_path / 'work')
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    cmd = [sys.executable, 'tools/train.py', PRETRAIN, '--work-dir', work, '--cfg-options',
           f'train_dataloader.dataset.data_root={root}/', 'train_dataloader.batch_size=2',
           'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2',
           'default_hooks.logger.interval=1']
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert 'persp.loss_heatmap' in out
    ckpt_path = osp.join(work, 'iter_2.pth')
    state = safe_load_checkpoint(ckpt_path)['state_dict']
    assert any(k.startswith('img_backbone.') for k in state)
    assert any(k.startswith('perspective_head.') for k in state)

    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(REPO, FROM_PRETRAINED))
    cfg.model.img_backbone.init_cfg.checkpoint = ckpt_path
    cfg.model.img_neck.init_cfg.checkpoint = ckpt_path
    model = MODELS.build(cfg.model)
    model.init_weights()
    ours = model.state_dict()
    for key, value in state.items():
        if key.startswith(('img_backbone.', 'img_neck.')):
            torch.testing.assert_close(ours[key], value, msg=key)
    # The BEV encoder and heads start from scratch (not in the pretrained file).
    assert not any(k.startswith('bev_encoder.') for k in state)


def test_quickstart_starts_from_the_shipped_backbone():
    """The default quickstart loads checkpoints/quickstart_perspective_backbone-*.pth (float16
    on disk) into its backbone and neck, from any working directory; both train on (the stem
    and stage 1 and BatchNorm statistics frozen, as in the original), with the perspective head
    on the image features; the frozen ablation freezes the whole backbone, the from-scratch one
    trains all of it."""
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(REPO, FROM_PRETRAINED))
    path = cfg.model.img_backbone.init_cfg.checkpoint
    assert osp.isfile(path) and osp.getsize(path) <= 10 * 2**20, path
    shipped = safe_load_checkpoint(path)['state_dict']
    assert {k.split('.')[0] for k in shipped} == {'img_backbone', 'img_neck'}
    model = MODELS.build(cfg.model)
    model.init_weights()
    ours = model.state_dict()
    for key, value in shipped.items():
        assert torch.equal(ours[key], value.to(ours[key].dtype)), key
    model.train()
    # as the original's pretrained ResNets: stem and stage 1 frozen, BatchNorm statistics kept
    frozen = list(model.img_backbone.conv1.parameters()) + list(
        model.img_backbone.layer1.parameters())
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in model.img_backbone.layer2.parameters())
    assert all(p.requires_grad for p in model.img_backbone.layer4.parameters())
    assert not model.img_backbone.layer4[0].bn1.training
    assert all(p.requires_grad for p in model.img_neck.parameters())
    assert model.perspective_head is not None

    frozen = Config.fromfile(osp.join(REPO, FROZEN))
    model = MODELS.build(frozen.model)
    model.init_weights()
    frozen_state = model.state_dict()
    for key, value in shipped.items():
        assert torch.equal(frozen_state[key], value.to(frozen_state[key].dtype)), key
    model.train()
    assert not any(p.requires_grad for p in model.img_backbone.parameters())
    assert not model.img_backbone.layer4[0].bn1.training  # norm_eval: frozen statistics
    assert all(p.requires_grad for p in model.img_neck.parameters())
    assert getattr(model, 'perspective_head', None) is None

    scratch = Config.fromfile(osp.join(REPO, 'configs/bevformer/ablations/'
                                       'quickstart_backbone_from_scratch.py'))
    model = MODELS.build(scratch.model)
    model.train()
    assert all(p.requires_grad for p in model.img_backbone.parameters())
    assert model.img_backbone.layer1[0].bn1.training
