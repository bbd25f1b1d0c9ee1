"""ContiguousVideoSampler (datasets/samplers.py): per-rank contiguous blocks survive mmengine's
result collection; the sampler in a Runner dataloader keeps each rank's frames in order."""
import itertools

import pytest
from mmengine.runner import Runner

from projects.bevformer.datasets import contiguous_blocks
from tests.test_bevformer.bev_data_helpers import SYNTH_PIPELINE as PIPELINE


def _mmengine_collect(parts, size):
    """What mmengine.dist.collect_results does with per-rank result lists."""
    ordered = []
    for res in zip(*parts):
        ordered.extend(list(res))
    return ordered[:size]


@pytest.mark.parametrize('num, world', list(itertools.product([1, 2, 5, 7, 12, 81], [1, 2, 3, 4,
                                                                                   8])))
def test_contiguous_blocks_survive_result_collection(num, world):
    blocks = contiguous_blocks(num, world)
    assert len({len(b) for b in blocks}) == 1  # equal lengths (zip would truncate)
    for b in blocks:
        assert all(y - x in (0, 1) for x, y in zip(b[:-1], b[1:]))  # contiguous (repeats at end)
    assert sorted(_mmengine_collect(blocks, num)) == list(range(num))


def test_sampler_in_runner_dataloader(synth):
    root, path = synth
    cfg = dict(batch_size=2, num_workers=0,
               sampler=dict(type='ContiguousVideoSampler', rank=1, world_size=2),
               dataset=dict(type='NuScenesBEVDataset', ann_file=path, data_root=root,
                            pipeline=PIPELINE, queue_length=1, test_mode=True),
               collate_fn=dict(type='pseudo_collate'))
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        loader = Runner.build_dataloader(cfg)
    tokens = [s.token for batch in loader for s in batch['data_samples']]
    assert tokens == ['s1f2', 's2f0', 's2f1', 's2f2', 's2f3', 's2f4']
