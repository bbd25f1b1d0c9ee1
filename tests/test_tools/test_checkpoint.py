"""Checkpoints: mmengine's own load with weights_only kept on, malicious files refused,
atomic writes, resume restores iteration and optimizer state."""
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import CheckpointLoader, Runner
from mmengine.runner import checkpoint as mm_checkpoint
from torch.utils.data import Dataset

import mmdet.registry  # noqa: F401  (the mmdet scope the toy runner uses)
import projects.common  # noqa: F401
from projects.common import checkpoint as ck


class _Toy(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x, y=None, mode='tensor'):
        out = self.fc(torch.stack(x)).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - torch.stack(y))**2).mean())
        return out


class _ToyData(Dataset):

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(3, generator=g)
        return dict(x=x, y=x.sum())


def _runner(work_dir: str, max_iters: int, resume: bool = False) -> Runner:
    return Runner(
        model=_Toy(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=_ToyData(), sampler=dict(type='DefaultSampler', shuffle=True), batch_size=4),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        resume=resume,
        default_scope='mmdet')  # as our configs (mmengine's would stay current for later tests)


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    runner = _runner(str(tmp_path), max_iters=2)
    runner.train()
    path = osp.join(str(tmp_path), 'iter_2.pth')
    # Plain torch.load (weights_only default) refuses mmengine's HistoryBuffer / numpy...
    with pytest.raises(Exception):
        torch.load(path)
    # ...our loader accepts exactly those types.
    loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert loaded['meta']['iter'] == 2
    assert 'fc.weight' in loaded['state_dict']


class _Payload:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Payload(str(marker))}, str(path))
    with pytest.raises(RuntimeError, match='Refusing to load checkpoint .*evil.pth'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


def test_missing_and_corrupt_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        ck.safe_load_checkpoint(str(tmp_path / 'nope.pth'))
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(b'PK\x03\x04garbage')
    with pytest.raises(RuntimeError, match='truncated.pth'):
        ck.safe_load_checkpoint(str(bad))


def test_atomic_save_leaves_old_file_intact_on_failure(tmp_path, monkeypatch):
    path = str(tmp_path / 'ckpt.pth')
    mm_checkpoint.save_checkpoint({'v': torch.tensor([1.0])}, path)
    assert torch.load(path)['v'].item() == 1.0

    def boom(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(ck.os, 'replace', boom)
    with pytest.raises(OSError, match='disk full'):
        mm_checkpoint.save_checkpoint({'v': torch.tensor([2.0])}, path)
    # The previous checkpoint is untouched and no temp file is left behind.
    assert torch.load(path)['v'].item() == 1.0
    assert os.listdir(tmp_path) == ['ckpt.pth']


def test_resume_restores_iteration_and_optimizer(tmp_path):
    work = str(tmp_path)
    first = _runner(work, max_iters=4)
    first.train()
    state_at_4 = torch.load(osp.join(work, 'iter_4.pth'), weights_only=False)
    second = _runner(work, max_iters=6, resume=True)
    second.train()
    # It went on from iteration 4 (the latest checkpoint), not from 0.
    assert second.iter == 6
    assert not osp.exists(osp.join(work, 'iter_8.pth'))
    # The optimizer's step count proves its state was restored: 4 restored + 2 new steps.
    step = second.optim_wrapper.optimizer.state_dict()['state'][0]['step']
    assert int(step) == 6
    assert int(state_at_4['optimizer']['state'][0]['step']) == 4


class _GetattrPayload:
    """Pickles as getattr(numpy.ndarray, 'tofile'): a gadget that would write files."""

    def __reduce__(self):
        import numpy as np
        return (getattr, (np.ndarray, 'tofile'))


def test_checkpoint_with_general_getattr_is_refused(tmp_path):
    path = tmp_path / 'gadget.pth'
    torch.save({'meta': _GetattrPayload()}, str(path))
    with pytest.raises(RuntimeError, match='gadget.pth'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
