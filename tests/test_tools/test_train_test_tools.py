"""The standard tools end to end on CPU: train -> checkpoint -> resume -> test, and a
2-process distributed run (gloo) whose ranks hold the same weights after training."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/deformable_detr/deformable-detr_r18_1xb4-2k_synthetic-coco.py')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(cmd, env=None, timeout=600) -> str:
    full_env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(map(str, cmd))} failed:\n{out[-6000:]}'
    return out


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    from projects.deformable_detr.datasets.synthetic_coco import generate_synthetic_coco
    root = tmp_path_factory.mktemp('synthetic_coco')
    generate_synthetic_coco(str(root), num_train=8, num_val=4, seed=0, size_range=(96, 128))
    return str(root)


def _small_options(root: str, max_iters: int) -> list:
    ann_val = osp.join(root, 'annotations/instances_val.json')
    return [
        f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}', f'val_evaluator.ann_file={ann_val}',
        f'test_evaluator.ann_file={ann_val}', f'train_cfg.max_iters={max_iters}',
        'train_cfg.val_interval=1000', 'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        'model.encoder.num_layers=1', 'model.decoder.num_layers=1', 'model.num_queries=10',
        'model.test_cfg.max_per_img=10'
    ]


def test_train_resume_test(coco_root, tmp_path):
    work = str(tmp_path / 'work')
    py = sys.executable
    _run([py, 'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options',
          *_small_options(coco_root, 2)])
    first = osp.join(work, 'iter_2.pth')
    assert osp.isfile(first)
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('iter_2.pth')

    # --resume (no value): continue from the latest checkpoint up to 4 iterations.
    out = _run([py, 'tools/train.py', CONFIG, '--work-dir', work, '--resume', '--cfg-options',
                *_small_options(coco_root, 4)])
    assert 'resumed' in out.lower()
    ckpt = torch.load(osp.join(work, 'iter_4.pth'), weights_only=False, map_location='cpu')
    assert ckpt['meta']['iter'] == 4
    steps = {int(s['step']) for s in ckpt['optimizer']['state'].values()}
    assert steps == {4}, f'optimizer state was not restored: steps {steps}'

    # test.py evaluates it with COCO AP and dumps the predictions.
    preds = str(tmp_path / 'preds.pkl')
    out = _run([py, 'tools/test.py', CONFIG, osp.join(work, 'iter_4.pth'), '--work-dir', work,
                '--out', preds, '--cfg-options', *_small_options(coco_root, 4)])
    assert 'coco/bbox_mAP' in out
    import pickle
    with open(preds, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 4 and 'pred_instances' in results[0]


HOOK_SRC = '''
import json, os
import torch
from mmengine.hooks import Hook
from mmdet.registry import HOOKS


@HOOKS.register_module()
class DumpWeightDigestHook(Hook):
    """Each rank writes a digest of its weights before and after training."""

    def _dump(self, runner, when):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        # Parameters, not buffers: BN running stats are per rank (broadcast_buffers=False).
        digest = {k: float(v.detach().double().sum()) for k, v in model.named_parameters()}
        path = os.path.join(runner.work_dir, f'digest_{when}_rank{runner.rank}.json')
        with open(path, 'w') as f:
            json.dump(dict(world_size=runner.world_size, digest=digest), f)

    def before_train(self, runner):
        self._dump(runner, 'before')

    def after_train(self, runner):
        self._dump(runner, 'after')
'''


def test_dist_train_two_cpu_processes(coco_root, tmp_path):
    (tmp_path / 'digest_hook.py').write_text(HOOK_SRC)
    config = tmp_path / 'with_digest.py'
    config.write_text(f"_base_ = '{CONFIG}'\n"
                      "custom_imports = dict(imports=['projects.deformable_detr', 'digest_hook'],"
                      " allow_failed_imports=False)\n"
                      "custom_hooks = [dict(type='DumpWeightDigestHook')]\n")
    work = str(tmp_path / 'work')
    out = _run(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', work,
                '--cfg-options', *_small_options(coco_root, 2), 'train_dataloader.batch_size=1'],
               env=dict(PORT=str(_free_port()), PYTHON=sys.executable,
                        PYTHONPATH=f'{REPO}:{tmp_path}'))
    assert osp.isfile(osp.join(work, 'iter_2.pth')), out[-3000:]

    def load(when, rank):
        with open(osp.join(work, f'digest_{when}_rank{rank}.json')) as f:
            return json.load(f)

    after = [load('after', 0), load('after', 1)]
    before = load('before', 0)
    assert after[0]['world_size'] == after[1]['world_size'] == 2
    # Both replicas hold identical weights after the optimizer steps...
    assert after[0]['digest'] == after[1]['digest']
    # ...which really moved away from the initial ones.
    changed = [k for k in before['digest'] if before['digest'][k] != after[0]['digest'][k]]
    assert len(changed) > 10
