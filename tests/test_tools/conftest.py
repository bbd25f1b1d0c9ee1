"""Shared fixtures of the tool tests: the tiny BEVFormer config on tests/conftest.py's
``tiny_root`` (one per session), the tools loaded as modules (to run them in-process), and a
toy mmengine set-up."""
import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(rel_path: str):
    """``tools/train.py`` etc. as a module (their ``main(argv)`` runs in-process)."""
    name = 'tool_' + rel_path.replace('/', '_').replace('.py', '')
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, rel_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def tiny_config(tiny_root, tmp_path_factory) -> str:
    """The tiny BEVFormer (GridMask and random queue sampling as in the quickstart, and the
    original's dropout 0.1, which the quickstart drops: resume must restore what it draws
    from): batch 2, 2-frame queue, 2 iterations, a checkpoint every 2."""
    from tests.test_bevformer.tiny_bevformer import tiny_cfg
    cfg = tiny_cfg(tiny_root)
    for layer_cfg in (cfg.model.bev_encoder.layer_cfg, cfg.model.heads.det.decoder.layer_cfg):
        layer_cfg.self_attn_cfg.dropout = layer_cfg.cross_attn_cfg.dropout = 0.1
        layer_cfg.ffn_cfg.ffn_drop = 0.1
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset.queue_length = 2
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 1000
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    # no seed (the quickstart fixes one): resume must then restore the run's own random seed
    cfg.pop('randomness', None)
    path = str(tmp_path_factory.mktemp('cfg') / 'tiny_bevformer.py')
    cfg.dump(path)
    return path


@pytest.fixture
def fast_config_text(monkeypatch):
    """For in-process tool runs: Config.pretty_text runs yapf (seconds per call: the runner
    logs the config and stores it in every checkpoint), the plain text is enough; and one
    intra-op thread (the tiny model is 10x slower with two threads on a busy 2-core machine)."""
    from mmengine.config import Config
    monkeypatch.setattr(Config, 'pretty_text', property(lambda self: self.text))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------- toy set-up
class ToyModel(BaseModel):
    """BN + linear regression; a sample with ``metainfo['nan_grad']`` adds a term whose loss is
    0 but whose gradient is NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3)
        self.fc = nn.Linear(3, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(self.bn(torch.stack(inputs))).squeeze(-1)
        if mode != 'loss':
            return out
        target = torch.tensor([s.metainfo['y'] for s in data_samples])
        loss = ((out - target)**2).mean()
        if any(s.metainfo.get('nan_grad') for s in data_samples):
            loss = loss + torch.sqrt(self.fc.weight.sum() * 0.0).sum()  # 0, gradient NaN
        return dict(loss=loss)


class ToyData(Dataset):
    """16 samples, tokens ``tok0..tok15``; ``nan_input`` / ``nan_grad``: indices to poison."""

    def __init__(self, nan_input=(), nan_grad=()) -> None:
        self.nan_input, self.nan_grad = set(nan_input), set(nan_grad)

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(3, generator=g)
        y = float(x.sum())
        if i in self.nan_input:
            x = x.clone()
            x[0] = float('nan')
        sample = BaseDataElement(metainfo=dict(token=f'tok{i}', y=y, nan_grad=i in self.nan_grad))
        return dict(inputs=x, data_samples=sample)


def toy_runner(work_dir: str, max_iters: int, resume: bool = False, dataset=None,
               custom_hooks=None, checkpoint=None, load_from=None, cfg=None,
               model=None) -> Runner:
    return Runner(
        model=model or ToyModel(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=dataset or ToyData(),
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=checkpoint or dict(type='CheckpointHook', interval=1,
                                                         by_epoch=False)),
        custom_hooks=custom_hooks,
        load_from=load_from,
        resume=resume,
        cfg=cfg,
        default_scope='mmdet')  # as our configs; leaves mmdet the current scope
