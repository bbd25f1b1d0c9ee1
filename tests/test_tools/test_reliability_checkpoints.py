"""Checkpoints: nothing is lost at any moment of a save (max_keep_ckpts=1), stale temp files
are cleaned, files are group-readable, loading is strict (with a partial flag), and resume
problems are named."""
import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook

import projects.common  # noqa: F401
from projects.common import CheckpointMismatchError, find_resume_checkpoint
from projects.common import checkpoint as ck
from tests.test_tools.conftest import REPO, ToyModel, load_tool, toy_runner

QUICKSTART = osp.join(REPO, 'configs/bevformer/bevformer_quickstart_synthetic.py')
KEEP_ONE = dict(type='CheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=1)


class Killed(BaseException):
    """Stands in for SIGKILL at one step of a save (BaseException: nothing catches it)."""


def _raise(*args, **kwargs):
    raise Killed()


def _last(work: str) -> str:
    with open(osp.join(work, 'last_checkpoint')) as f:
        return f.read().strip()


def _pth(work: str):
    return sorted(n for n in os.listdir(work) if n.endswith('.pth'))


def _kill_last_checkpoint_write(monkeypatch):
    original = ck.atomic_write_bytes

    def write(data, filename):
        if osp.basename(filename) == 'last_checkpoint':
            raise Killed()
        return original(data, filename)

    monkeypatch.setattr(ck, 'atomic_write_bytes', write)


@pytest.mark.parametrize('step', ['writing the new file', 'before last_checkpoint',
                                  'before removing the old one'])
def test_kill_during_save_with_max_keep_ckpts_1_loses_nothing(tmp_path, monkeypatch, step):
    work = str(tmp_path)
    toy_runner(work, max_iters=2, checkpoint=KEEP_ONE).train()
    assert _pth(work) == ['iter_2.pth'] and _last(work).endswith('iter_2.pth')

    # iteration 3's save is killed at `step` (mmengine deleted iter_2 before writing iter_3)
    with monkeypatch.context() as m:
        if step == 'writing the new file':
            m.setattr(ck.os, 'replace', _raise)
        elif step == 'before last_checkpoint':
            _kill_last_checkpoint_write(m)
        else:
            m.setattr(LocalBackend, 'remove', _raise)
        with pytest.raises(Killed):
            toy_runner(work, max_iters=3, resume=True, checkpoint=KEEP_ONE).train()

    named = find_resume_checkpoint(work)
    assert osp.isfile(named), f'{step}: last_checkpoint names a missing file'
    expected = 'iter_2.pth' if step != 'before removing the old one' else 'iter_3.pth'
    assert named.endswith(expected)
    assert 'iter_2.pth' in _pth(work)  # the old one is still there in every case
    assert projects.common.read_checkpoint(named)['meta']['iter'] == int(expected[5])
    # ...and the run resumes from it to the end, keeping one checkpoint.
    toy_runner(work, max_iters=4, resume=True, checkpoint=KEEP_ONE).train()
    assert _pth(work) == ['iter_4.pth'] and _last(work).endswith('iter_4.pth')


def test_stale_temp_files_are_cleaned_and_checkpoints_group_readable(tmp_path):
    work = str(tmp_path)
    stale = tmp_path / '.tmp_iter_7.pth.x1y2.part'
    stale.write_bytes(b'\0' * 1000)  # what a killed save leaves behind
    old_umask = os.umask(0o022)
    try:
        toy_runner(work, max_iters=1).train()
    finally:
        os.umask(old_umask)
    assert not stale.exists()
    assert not [n for n in os.listdir(work) if n.startswith('.tmp_')]
    for name in ('iter_1.pth', 'last_checkpoint'):
        mode = os.stat(osp.join(work, name)).st_mode & 0o777
        assert mode == 0o644, f'{name}: {oct(mode)}'


def test_previous_best_checkpoint_is_removed_only_after_the_new_one_is_written(tmp_path):
    runner = toy_runner(str(tmp_path), max_iters=1)
    hook = CheckpointHook(interval=1, by_epoch=False, save_best='acc', rule='greater')
    hook.before_train(runner)
    seen = []
    original = runner.save_checkpoint

    def save(out_dir, filename, *args, **kwargs):
        seen.append(sorted(os.listdir(out_dir)))
        return original(out_dir, filename, *args, **kwargs)

    runner.save_checkpoint = save
    hook._save_best_checkpoint(runner, {'acc': 0.5})
    runner.train_loop._iter = 1
    hook._save_best_checkpoint(runner, {'acc': 0.7})
    assert 'best_acc_iter_0.pth' in seen[1]  # still there while the new best is written
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith('best')) == \
        ['best_acc_iter_1.pth']


# ------------------------------------------------------------------------------ strict loading
def _toy_checkpoint(path, edit=None) -> str:
    state = ToyModel().state_dict()
    if edit:
        edit(state)
    torch.save({'state_dict': state, 'meta': {}}, str(path))
    return str(path)


@pytest.mark.parametrize('case,names', [
    ('unexpected', ['unexpected (not in the model) (1): extra.weight']),
    ('missing', ['missing in the checkpoint (1): fc.bias']),
    ('mismatched', ['shape mismatch (1): fc.weight (1, 4) in the checkpoint vs (1, 3)']),
    ('other model', ['0 of the model\'s 7 keys', 'missing in the checkpoint (6)',
                     'unexpected (not in the model) (2): head.weight, head.bias']),
    ('diverged', ['NaN / inf in 1 of its 7 tensors (a diverged run?): fc.weight']),
])
def test_loading_is_strict_and_names_every_key(tmp_path, case, names):
    def edit(state):
        if case == 'unexpected':
            state['extra.weight'] = torch.zeros(2)
        elif case == 'missing':
            del state['fc.bias']
        elif case == 'mismatched':
            state['fc.weight'] = torch.zeros(1, 4)
        elif case == 'diverged':
            state['fc.weight'][0, 0] = float('nan')
        else:
            state.clear()
            state.update({'head.weight': torch.zeros(2, 2), 'head.bias': torch.zeros(2)})

    path = _toy_checkpoint(tmp_path / 'ckpt.pth', edit)
    runner = toy_runner(str(tmp_path / 'work'), max_iters=1, load_from=path)
    with pytest.raises(CheckpointMismatchError) as err:
        runner.load_or_resume()
    message = str(err.value)
    assert 'ckpt.pth does not fit the model' in message and '--partial-load' in message
    for name in names:
        assert name in message, message

    # --partial-load / load_partial=True: what fits loads, the rest keeps its init.
    partial = toy_runner(str(tmp_path / 'work2'), max_iters=1, load_from=path,
                         cfg=dict(load_partial=True))
    before = {k: v.clone() for k, v in partial.model.state_dict().items()}
    partial.load_or_resume()
    if case == 'missing':  # fc.weight loaded from the checkpoint, fc.bias kept
        assert torch.equal(partial.model.fc.bias, before['fc.bias'])


def test_bn_num_batches_tracked_may_be_missing(tmp_path):
    path = _toy_checkpoint(tmp_path / 'old.pth', lambda s: s.pop('bn.num_batches_tracked'))
    runner = toy_runner(str(tmp_path / 'work'), max_iters=1, load_from=path)
    runner.load_or_resume()  # strict, no error


# ------------------------------------------------------------------------------ resume messages
def test_resume_with_a_weights_only_file_names_it(tmp_path):
    weights = _toy_checkpoint(tmp_path / 'weights.pth')
    train = load_tool('tools/train.py')
    with pytest.raises(ValueError, match=r'--resume .*weights.pth: not a checkpoint written by '
                       r'training.*load_from'):
        train.build_cfg(train.parse_args([QUICKSTART, '--resume', weights]))
    # the Runner itself (no tools) says the same instead of KeyError: 'epoch'
    runner = toy_runner(str(tmp_path / 'work'), max_iters=1, resume=True, load_from=weights)
    with pytest.raises(ValueError, match='weights.pth: not a checkpoint written by training'):
        runner.load_or_resume()


def test_resume_with_empty_or_dangling_last_checkpoint_names_it(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'iter_2.pth').write_bytes(b'x')
    (work / 'last_checkpoint').write_text('')
    train = load_tool('tools/train.py')
    args = train.parse_args([QUICKSTART, '--work-dir', str(work), '--resume'])
    with pytest.raises(FileNotFoundError, match=r'last_checkpoint is empty.*newest checkpoint '
                       r'there is .*iter_2.pth'):
        train.build_cfg(args)
    (work / 'last_checkpoint').write_text(str(work / 'iter_9.pth'))
    with pytest.raises(FileNotFoundError, match=r'names .*iter_9.pth, which does not exist'):
        train.build_cfg(args)


def test_resume_of_a_run_with_another_model_config_names_the_keys(tmp_path):
    """A work dir left by another recipe (here the previous quickstart's fully training
    backbone) is not resumed into this one: the error names the differing model keys. The
    schedule may change (a longer run) and pretrained-file paths (init_cfg) are ignored."""
    from mmengine.config import Config
    train = load_tool('tools/train.py')
    cfg = train.build_cfg(train.parse_args([QUICKSTART, '--work-dir', str(tmp_path / 'w')]))

    def checkpoint(name, edit):
        old = Config(copy.deepcopy(cfg.to_dict()))
        edit(old)
        path = tmp_path / name
        torch.save({'state_dict': {}, 'meta': {'epoch': 0, 'iter': 700,
                                               'cfg': old.pretty_text}}, str(path))
        return str(path)

    def earlier_recipe(old):
        old.model.img_backbone.frozen_stages = -1
        old.model.img_backbone.norm_eval = False

    path = checkpoint('iter_700.pth', earlier_recipe)
    with pytest.raises(ValueError, match=r'--resume .*iter_700.pth: that run trained another '
                       r'model config than this one \(2 difference\(s\): '
                       r'model.img_backbone.frozen_stages \(-1 -> 1\), '
                       r'model.img_backbone.norm_eval \(False -> True\)\).*load_from='):
        train.build_cfg(train.parse_args([QUICKSTART, '--resume', path]))

    def longer_run_elsewhere(old):
        old.train_cfg.max_iters = 300
        old.model.img_backbone.init_cfg.checkpoint = '/another/clone/checkpoints/x.pth'

    path = checkpoint('iter_300.pth', longer_run_elsewhere)
    resumed = train.build_cfg(train.parse_args([QUICKSTART, '--resume', path]))
    assert resumed.load_from == path and resumed.resume
    # the Runner's own resume (no tools) checks the same
    from projects.common import check_same_model
    with pytest.raises(ValueError, match='norm_eval'):
        check_same_model(torch.load(tmp_path / 'iter_700.pth', weights_only=False), cfg,
                         'iter_700.pth')
