"""BEVFormer through the standard tools on a tiny model and dataroot:
train -> checkpoint -> resume -> test -> nuScenes metric, predictions dump, --show-dir."""
import glob
import os
import os.path as osp
import subprocess
import sys

import torch

# tiny_config (2 iterations, a checkpoint every 2) comes from tests/test_tools/conftest.py
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _run(cmd) -> str:
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(map(str, cmd))} failed:\n{out[-6000:]}'
    return out


def test_train_resume_test_metric(tiny_config, tmp_path):
    work = str(tmp_path / 'work')
    py = sys.executable
    _run([py, 'tools/train.py', tiny_config, '--work-dir', work])
    assert osp.isfile(osp.join(work, 'iter_2.pth'))

    out = _run([py, 'tools/train.py', tiny_config, '--work-dir', work, '--resume',
                '--cfg-options', 'train_cfg.max_iters=4'])
    assert 'resumed' in out.lower()
    ckpt = torch.load(osp.join(work, 'iter_4.pth'), weights_only=False, map_location='cpu')
    assert ckpt['meta']['iter'] == 4
    assert {int(s['step']) for s in ckpt['optimizer']['state'].values()} == {4}

    preds = str(tmp_path / 'preds.pkl')
    out = _run([py, 'tools/test.py', tiny_config, osp.join(work, 'iter_4.pth'), '--work-dir', work,
                '--out', preds, '--show-dir', 'vis', '--cfg-options',
                f'test_evaluator.jsonfile_prefix={tmp_path}/submission'])
    assert 'NuScenes/NDS' in out and 'NuScenes/mAP' in out
    import pickle
    with open(preds, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 4  # the val scene's 4 frames
    assert results[0]['pred_instances_3d']['bboxes_3d'].shape[-1] == 9
    assert glob.glob(str(tmp_path / 'submission' / '*.json')), 'no submission JSON written'
    assert len(glob.glob(osp.join(work, '*', 'vis', '*.png'))) == 4


def test_amp_flag_trains_on_cpu(tiny_config, tmp_path):
    work = str(tmp_path / 'amp')
    out = _run([sys.executable, 'tools/train.py', tiny_config, '--work-dir', work, '--amp',
                '--cfg-options', 'train_cfg.max_iters=1'])
    assert 'CPUAutocastOptimWrapper' in out
    assert osp.isfile(osp.join(work, 'iter_1.pth'))
