"""A distributed sampler for video-mode testing: each rank gets a contiguous block of frames.

BEVFormer's test reuses the previous frame's BEV, so a rank must see the frames of a scene
in order. mmengine's ``DefaultSampler`` deals indices round-robin (rank r gets r, r + W, ...),
which breaks that. Here rank r gets one contiguous run of the dataset.

Result collection: mmengine's ``collect_results`` interleaves the ranks' result lists
(``zip``) and truncates to ``len(dataset)``. So every rank yields the same number of items
``ceil(n / W)``, and the ``p = W * ceil(n / W) - n`` padding items (repeats of a rank's last
frame) sit at the **last position of the last p ranks**: exactly the entries that the
truncation drops. Every frame's result is then kept once (in an interleaved order; metrics
key results by token).
"""
import math
from typing import Iterator, List, Optional

from mmdet.registry import DATA_SAMPLERS
from mmengine.dist import get_dist_info
from torch.utils.data import Dataset, Sampler


def contiguous_blocks(num: int, world_size: int) -> List[List[int]]:
    """Split ``range(num)`` into ``world_size`` padded contiguous blocks.

    Args:
        num (int): dataset length.
        world_size (int): number of ranks.

    Returns:
        list[list[int]]: per rank, ``ceil(num / world_size)`` indices; the first
        ``world_size - p`` ranks get that many distinct frames, the last ``p`` one fewer plus
        a repeat of their last frame (``p`` as in the module docstring). A rank with nothing
        left (tiny datasets) repeats the dataset's last index.
    """
    if num <= 0:
        return [[] for _ in range(world_size)]
    per = math.ceil(num / world_size)
    pad = per * world_size - num
    blocks, start = [], 0
    for rank in range(world_size):
        count = per - 1 if rank >= world_size - pad else per
        block = list(range(start, min(start + count, num)))
        start += count
        if not block:
            block = [num - 1]
        blocks.append(block + [block[-1]] * (per - len(block)))
    return blocks


@DATA_SAMPLERS.register_module()
class ContiguousVideoSampler(Sampler):
    """Deterministic sampler giving each rank one contiguous block of the dataset.

    Args:
        dataset (Dataset): the dataset (its order is the scene / time order).
        rank (int, optional), world_size (int, optional): default from ``mmengine.dist``.
        seed (int, optional): ignored (the order is deterministic); accepted because
            ``Runner.build_dataloader`` passes it to every sampler.
    """

    def __init__(self, dataset: Dataset, rank: Optional[int] = None,
                 world_size: Optional[int] = None, seed: Optional[int] = None) -> None:
        dist_rank, dist_world = get_dist_info()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f'ContiguousVideoSampler: rank {self.rank} not in '
                             f'[0, {self.world_size})')
        self.dataset = dataset
        self.indices = contiguous_blocks(len(dataset), self.world_size)[self.rank]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        """No-op (the order is fixed); the runner calls it on every sampler."""
