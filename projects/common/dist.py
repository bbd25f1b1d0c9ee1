"""Distributed set-up that works with CPU processes (gloo) as well as GPUs (nccl).

mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` unconditionally, and
its DDP wrapper passes ``device_ids=[LOCAL_RANK]``, which PyTorch rejects for CPU modules.
"""
import os
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import init_dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


def init_dist_auto(launcher: str, backend: Optional[str] = None, **kwargs) -> str:
    """Initialise the default process group for ``launcher`` ('pytorch' or 'slurm').

    Chooses ``nccl`` when CUDA is available and ``gloo`` otherwise, unless ``backend`` is
    given. Returns the backend used. With CUDA this defers to mmengine's ``init_dist``.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        return torch_dist.get_backend()
    if torch.cuda.is_available():
        backend = backend or 'nccl'
        init_dist(launcher, backend=backend, **kwargs)
        return backend
    backend = backend or 'gloo'
    if launcher == 'slurm':
        # Translate SLURM's variables into the env:// ones torch expects.
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            raise RuntimeError('CPU slurm runs need MASTER_ADDR in the environment')
    elif launcher != 'pytorch':
        raise ValueError(f'unsupported launcher {launcher!r}; expected pytorch or slurm')
    torch_dist.init_process_group(
        backend=backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)
    return backend


@MODEL_WRAPPERS.register_module()
class DeviceAwareDDP(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that drops ``device_ids`` for CPU modules.

    The Runner always passes ``device_ids=[LOCAL_RANK]``; that is right for a module on
    a GPU and an error for one on the CPU, where DDP needs ``device_ids=None``.
    """

    def __init__(self, module: torch.nn.Module, device_ids=None, **kwargs) -> None:
        first = next(module.parameters(), None)
        if first is not None and first.device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)
