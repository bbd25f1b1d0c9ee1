"""Engine plumbing shared by every project package and the tools.

Importing it makes mmengine's checkpoints safe and atomic on torch >= 2.6 (see
:mod:`.checkpoint`) and registers a model wrapper that runs DDP on CPU as well as GPU
(see :mod:`.dist`).
"""
from .amp import CPUAutocastOptimWrapper
from .checkpoint import (SAFE_CHECKPOINT_GLOBALS, atomic_save_checkpoint,
                         install_checkpoint_safety, safe_load_checkpoint)
from .dist import DeviceAwareDDP, init_dist_auto

install_checkpoint_safety()

__all__ = [
    'CPUAutocastOptimWrapper', 'SAFE_CHECKPOINT_GLOBALS', 'atomic_save_checkpoint', 'install_checkpoint_safety',
    'safe_load_checkpoint', 'DeviceAwareDDP', 'init_dist_auto'
]
