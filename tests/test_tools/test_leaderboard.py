"""tools/analysis/config_diff.py and leaderboard.py: resolved diffs of the ablations, and a
leaderboard of two short training runs of two variants."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.test_bevformer.bev_data_helpers import make_synthetic_dataroot
from tests.test_bevformer.tiny_bevformer import tiny_cfg
from tools.analysis import leaderboard
from tools.analysis.config_diff import config_diff, main as diff_main

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(REPO, 'configs/bevformer/bevformer_tiny.py')
ABLATIONS = {
    'bevformer_tiny_bev25.py': {'model.bev_encoder.bev_h', 'model.bev_encoder.bev_w'},
    'bevformer_tiny_4points.py': {
        'model.bev_encoder.layer_cfg.cross_attn_cfg.deformable_attention.num_points'},
    'bevformer_tiny_no_can_bus.py': {'model.bev_encoder.use_can_bus'},
    'bevformer_tiny_static.py': {'model.video_test_mode', 'train_dataloader.dataset.queue_length'},
}


@pytest.mark.parametrize('name', sorted(ABLATIONS))
def test_ablation_diff_lists_exactly_what_its_file_sets(name):
    diff = config_diff(TINY, osp.join(REPO, 'configs/bevformer/ablations', name))
    assert {key for key, _, _ in diff} == ABLATIONS[name]


def test_diff_values_and_cli(capsys):
    diff = dict((k, (a, b)) for k, a, b in config_diff(
        TINY, osp.join(REPO, 'configs/bevformer/ablations/bevformer_tiny_bev25.py')))
    assert diff['model.bev_encoder.bev_h'] == (50, 25)
    assert diff_main([TINY, osp.join(REPO, 'configs/bevformer/bevformer_small.py')]) == 0
    out = capsys.readouterr().out
    assert 'model.bev_encoder.bev_h: 50 → 150' in out
    assert "train_dataloader.dataset.pipeline.3.scale_factor: 0.5 → 0.8" in out


def test_leaderboard_of_two_short_runs(tmp_path):
    root, _ = make_synthetic_dataroot(str(tmp_path / 'data'), num_scenes=2, frames_per_scene=3)
    cfg = tiny_cfg(root)
    cfg.train_dataloader.batch_size = 1
    cfg.train_dataloader.dataset.queue_length = 2
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    base_cfg = str(tmp_path / 'base.py')
    cfg.dump(base_cfg)
    cfg.model.heads.det.num_query = 10
    variant_cfg = str(tmp_path / 'fewer_queries.py')
    cfg.dump(variant_cfg)
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    work_dirs = []
    for config, name in ((base_cfg, 'base'), (variant_cfg, 'fewer_queries')):
        work = str(tmp_path / 'runs' / name)
        proc = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', work],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        work_dirs.append(work)
    out_file = str(tmp_path / 'board.md')
    assert leaderboard.main(work_dirs + ['--out', out_file]) == 0
    table = open(out_file).read().splitlines()
    assert len(table) == 4  # header, separator, two runs
    rows = {line.split('|')[1].strip(): line for line in table[2:]}
    assert set(rows) == {'base', 'fewer_queries'}
    assert 'model.heads.det.num_query: 20 → 10' in rows['fewer_queries']
    assert '(the base)' in rows['base']
    for line in rows.values():
        cells = [c.strip() for c in line.split('|')[1:-1]]
        nds, map_, params, iters = cells[1], cells[2], cells[3], cells[4]
        assert 0.0 <= float(nds) <= 1.0 and 0.0 <= float(map_) <= 1.0
        assert float(params) > 0 and iters == '2'
    csv_rows = leaderboard.render([leaderboard.summarize(w, ['NuScenes/NDS'], base_cfg)
                                   for w in work_dirs], ['NuScenes/NDS'], 'csv').splitlines()
    assert csv_rows[0].startswith('run,NuScenes/NDS,params (M)') and len(csv_rows) == 3
