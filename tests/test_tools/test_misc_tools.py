"""The small tools: tools/slurm_test.sh (and slurm_train.sh) with a stand-in srun,
tools/misc/print_config.py, tools/model_converters/publish_model.py and
tools/analysis/browse_dataset.py on the tiny synthetic dataroot."""
import glob
import hashlib
import os
import os.path as osp
import subprocess

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from projects.common.checkpoint import safe_load_checkpoint
from tests.test_tools.conftest import REPO, load_tool, toy_runner

FAKE_SRUN = '#!/usr/bin/env bash\necho "srun $*"\n'


@pytest.fixture
def fake_srun(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    return dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}')


def test_slurm_scripts_compose_the_srun_command(fake_srun):
    env = dict(fake_srun, GPUS='4', SRUN_ARGS='--quotatype=auto')
    out = subprocess.run(['bash', 'tools/slurm_test.sh', 'part', 'job', 'configs/x.py', 'ck.pth',
                          '--out', 'preds.pkl'], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith('srun -p part --job-name=job --gres=gpu:4 --ntasks=4 '
                           '--ntasks-per-node=4 --cpus-per-task=5 --kill-on-bad-exit=1 '
                           '--quotatype=auto ')
    assert line.endswith(' -u tools/test.py configs/x.py ck.pth --launcher slurm --out preds.pkl')
    out = subprocess.run(['bash', 'tools/slurm_test.sh', 'part', 'job'], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and 'usage' in out.stderr
    out = subprocess.run(['bash', 'tools/slurm_train.sh', 'part', 'job', 'configs/x.py', 'wd'],
                         cwd=REPO, env=fake_srun, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith(
        ' -u tools/train.py configs/x.py --work-dir=wd --launcher slurm'), out.stdout + out.stderr


def test_print_config_merges_bases_and_options(tmp_path, capsys):
    tool = load_tool('tools/misc/print_config.py')
    saved = str(tmp_path / 'merged.py')
    cfg = tool.main(['configs/bevformer/bevformer_quickstart_synthetic.py', '--cfg-options',
                     'model.bev_encoder.bev_h=16', 'train_cfg.max_iters=7',
                     '--save-path', saved])
    printed = capsys.readouterr().out
    assert printed.startswith('Config:\n')
    assert 'bev_h=16' in printed and 'max_iters=7' in printed
    assert "type='NuScenesBEVDataset'" in printed  # from the _base_ dataset config
    from mmengine.config import Config
    assert Config.fromfile(saved).model.bev_encoder.bev_h == 16 == cfg.model.bev_encoder.bev_h
    with pytest.raises(SystemExit):
        tool.main(['configs/bevformer/bevformer_quickstart_synthetic.py', '--cfg-options',
                   'train_cfg.max_iters'])
    with pytest.raises(KeyError, match="did you mean 'train_dataloader'"):
        tool.main(['configs/bevformer/bevformer_quickstart_synthetic.py', '--cfg-options',
                   'trian_dataloader.batch_size=1'])


def test_publish_model_strips_training_state(tmp_path):
    runner = toy_runner(str(tmp_path / 'run'), max_iters=2)
    runner.train()
    src = str(tmp_path / 'run' / 'iter_2.pth')
    full = safe_load_checkpoint(src)
    assert {'optimizer', 'message_hub'} <= set(full) and 'rng_states' in full['meta']
    tool = load_tool('tools/model_converters/publish_model.py')
    out = tool.main([src, str(tmp_path / 'pub' / 'toy.pth')])
    digest = hashlib.sha256(open(out, 'rb').read()).hexdigest()
    assert out == str(tmp_path / 'pub' / f'toy-{digest[:8]}.pth')
    pub = safe_load_checkpoint(out)
    assert set(pub) == {'meta', 'state_dict'}
    assert 'rng_states' not in pub['meta'] and pub['meta']['iter'] == 2
    for key, value in full['state_dict'].items():
        assert torch.equal(pub['state_dict'][key], value)
    assert not glob.glob(str(tmp_path / 'pub' / '.tmp_*'))
    # only some modules, in half precision: what a pretrained-backbone init_cfg loads
    out = tool.main([src, str(tmp_path / 'pub' / 'bn.pth'), '--modules', 'bn', '--fp16'])
    pub = safe_load_checkpoint(out)['state_dict']
    assert set(pub) == {k for k in full['state_dict'] if k.startswith('bn.')}
    assert pub['bn.weight'].dtype == torch.float16
    assert pub['bn.num_batches_tracked'].dtype == torch.long  # integers stay as they are
    torch.testing.assert_close(pub['bn.running_var'].float(), full['state_dict']['bn.running_var'],
                               rtol=2**-11, atol=0)
    model = nn.BatchNorm1d(3)
    model.load_state_dict({k[3:]: v for k, v in pub.items()})
    assert model.weight.dtype == torch.float32
    with pytest.raises(KeyError, match=r"no weights under \['img_backbone'\].*\['bn', 'fc'\]"):
        tool.main([src, str(tmp_path / 'pub' / 'x.pth'), '--modules', 'img_backbone'])
    # a model with NaN weights is not published
    full['state_dict']['fc.weight'][0, 0] = float('nan')
    bad = str(tmp_path / 'bad.pth')
    torch.save(full, bad)
    with pytest.raises(ValueError, match=r"NaN / inf.*fc.weight"):
        tool.main([bad, str(tmp_path / 'pub' / 'bad.pth')])
    # and a file that pickles code is refused unread
    evil = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': {'hook': os.system}}, evil)
    with pytest.raises(RuntimeError, match='Refusing to load'):
        tool.main([evil, str(tmp_path / 'pub' / 'evil.pth')])


def test_browse_dataset_draws_the_pipeline_output(tiny_root, tmp_path):
    """The train pipeline with a crop and photometric distortion: what is drawn is what the
    model gets (cropped size, distorted pixels, lidar2img after the crop)."""
    from mmengine.config import Config

    from tests.test_bevformer.tiny_bevformer import tiny_cfg
    tool = load_tool('tools/analysis/browse_dataset.py')
    cfg = tiny_cfg(tiny_root)
    pipeline = [t for t in cfg.train_dataloader.dataset.pipeline if t.type != 'PackBEVInputs']
    pipeline += [dict(type='MultiViewPhotoMetricDistortion'),
                 dict(type='MultiViewCrop', crop_size=(40, 120), position='random'),
                 dict(type='PackBEVInputs')]
    cfg.train_dataloader.dataset.pipeline = pipeline
    path = str(tmp_path / 'browse.py')
    cfg.dump(path)
    dataset = tool.build_dataset(Config.fromfile(path), 'train')
    item = dataset[0]
    frames = tool.item_frames(item)
    assert len(frames) == cfg.train_dataloader.dataset.queue_length
    cur = frames[-1]
    assert len(cur['imgs']) == 6 and cur['imgs'][0].shape == (40, 120, 3)
    np.testing.assert_array_equal(
        cur['imgs'][2], np.clip(item['inputs']['img'][-1, 2].permute(1, 2, 0).numpy(), 0,
                                255).astype(np.uint8)[..., ::-1])
    np.testing.assert_array_equal(cur['lidar2img'], item['inputs']['lidar2img'][-1].numpy())
    assert cur['gt_boxes'] is not None and frames[0]['gt_boxes'] is None
    out_dir = str(tmp_path / 'out')
    paths = tool.main([path, '--out-dir', out_dir, '--num', '2', '--all-frames', '--dpi', '40'])
    assert len(paths) == 2 * len(frames) and all(osp.isfile(p) for p in paths)
    assert cv2.imread(paths[-1]).std() > 5
    paths = tool.main([path, '--out-dir', out_dir, '--num', '1', '--split', 'val',
                       '--dpi', '40'])
    assert len(paths) == 1
