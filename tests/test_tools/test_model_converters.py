"""tools/model_converters/bevformer_official_to_mm.py: the original-BEVFormer fixture
checkpoint converts, loads strictly into the tiny_small parity config, and tools/test.py runs
it on a synthetic dataroot; bad input is refused with the file and keys named."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from projects.common.checkpoint import safe_load_checkpoint
from tests.shared_data import BEVFORMER_REFERENCE_DIR
from tests.test_bevformer.bev_data_helpers import make_synthetic_dataroot

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONVERTER = 'tools/model_converters/bevformer_official_to_mm.py'
PARITY_CONFIG = 'configs/bevformer/official/bevformer_tiny_small_parity.py'
FIXTURE_CKPT = osp.join(BEVFORMER_REFERENCE_DIR, 'checkpoint.pth')


def _run(cmd, expect_ok: bool = True) -> str:
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable] + cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == expect_ok, f'{" ".join(cmd)} -> {proc.returncode}:\n' \
                                                f'{out[-6000:]}'
    return out


def test_convert_then_test_on_the_synthetic_dataroot(tmp_path):
    dst = str(tmp_path / 'converted.pth')
    out = _run([CONVERTER, FIXTURE_CKPT, dst, '--config', PARITY_CONFIG])
    assert 'loads into' in out and 'strict=True' in out
    ckpt = safe_load_checkpoint(dst)
    assert set(ckpt) == {'meta', 'state_dict'}
    assert ckpt['meta']['converter'] == 'bevformer_official_to_mm'
    assert ckpt['meta']['dataset_meta']['classes'][0] == 'car'
    assert 'bev_encoder.bev_embedding.weight' in ckpt['state_dict']

    root = str(tmp_path / 'nuscenes')
    make_synthetic_dataroot(root, num_scenes=2, frames_per_scene=3)
    opts = [f'test_dataloader.dataset.data_root={root}/',
            f'test_evaluator.data_root={root}/',
            f'test_evaluator.ann_file={root}/nuscenes_infos_val.pkl',
            'test_evaluator.version=v1.0-mini']
    out = _run(['tools/test.py', PARITY_CONFIG, dst, '--work-dir', str(tmp_path / 'work'),
                '--cfg-options'] + opts)
    assert 'NuScenes/NDS' in out


def test_converter_refuses_a_checkpoint_that_does_not_fit_the_config(tmp_path):
    # The fixture (64-d) against the real tiny config (256-d): every mismatch is listed.
    out = _run([CONVERTER, FIXTURE_CKPT, str(tmp_path / 'x.pth'), '--config',
                'configs/bevformer/official/bevformer_tiny_official.py'], expect_ok=False)
    assert 'does not fit' in out and 'shape mismatch' in out
    assert 'bev_encoder.bev_embedding.weight' in out
    assert not osp.exists(tmp_path / 'x.pth')


def test_converter_names_unmapped_keys_and_refuses_unsafe_files(tmp_path):
    ckpt = torch.load(FIXTURE_CKPT, weights_only=True)
    ckpt['state_dict']['pts_bbox_head.extra_branch.weight'] = torch.zeros(2)
    src = str(tmp_path / 'extra.pth')
    torch.save(ckpt, src)
    out = _run([CONVERTER, src, str(tmp_path / 'y.pth')], expect_ok=False)
    assert 'extra.pth' in out and 'pts_bbox_head.extra_branch.weight' in out

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {tmp_path}/pwned', ))

    evil = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': Payload()}, evil)
    out = _run([CONVERTER, evil, str(tmp_path / 'z.pth')], expect_ok=False)
    assert 'Refusing to load checkpoint' in out
    assert not osp.exists(tmp_path / 'pwned')
