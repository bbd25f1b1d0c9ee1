"""tools/analysis/benchmark_model.py on a seconds-sized model: stage split, memory, JSON."""
import json
import os.path as osp

import pytest

from tests.test_bevformer.tiny_bevformer import tiny_cfg
from tools.analysis import benchmark_model


@pytest.mark.parametrize('mode', ['inference', 'train'])
def test_benchmark_reports_stages_and_memory(tmp_path, mode):
    cfg = tiny_cfg(str(tmp_path))
    path = str(tmp_path / 'tiny.py')
    cfg.dump(path)
    out_json = str(tmp_path / 'bench.json')
    assert benchmark_model.main([path, '--mode', mode, '--num-iters', '2', '--warmup', '1',
                                 '--img-size', '45', '80', '--threads', '1',
                                 '--json', out_json]) == 0
    with open(out_json) as f:
        out = json.load(f)
    assert out['img_hw'] == [45, 80] and out['threads'] == 1 and len(out['load_average']) == 3
    stages = set(out['stages'])
    if mode == 'inference':
        assert stages == {'backbone+neck', 'bev encoder', 'head', 'post-processing', 'total'}
        parts = sum(out['stages'][k]['median_ms'] for k in stages - {'total'})
        assert parts == pytest.approx(out['stages']['total']['median_ms'], rel=0.5)
    else:
        assert stages == {'total'} and out['frames'] == cfg.train_dataloader.dataset.queue_length
    assert out['samples_per_s'] > 0 and out['peak_mb']['rss_peak'] > 0
    assert all(s['min_ms'] <= s['median_ms'] <= s['max_ms'] for s in out['stages'].values())
    assert osp.getsize(out_json) > 0


def test_benchmark_accepts_the_backbone_speedup_flags(tmp_path):
    cfg = tiny_cfg(str(tmp_path))
    path = str(tmp_path / 'tiny.py')
    cfg.dump(path)
    out_json = str(tmp_path / 'bench.json')
    assert benchmark_model.main([path, '--num-iters', '1', '--warmup', '0', '--img-size', '45',
                                 '80', '--threads', '1', '--fuse-conv-bn', '--channels-last',
                                 '--json', out_json]) == 0
    with open(out_json) as f:
        out = json.load(f)
    assert out['fuse_conv_bn'] and out['channels_last']
    assert 'fuse-conv-bn True, channels-last True' in benchmark_model.format_table(out)
    with pytest.raises(SystemExit):  # inference-only options
        benchmark_model.main([path, '--mode', 'train', '--fuse-conv-bn'])
