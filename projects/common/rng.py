"""Exact ``--resume``: the Python, numpy and torch RNG states travel with the checkpoint.

mmengine restores only the seed, so a resumed run draws different GridMask masks, dropout
masks and history frames from the uninterrupted one. Here:

- every checkpoint written by ``CheckpointHook`` carries ``meta['rng_states']``: one
  :func:`get_rng_state` per rank (gathered by :func:`collect_rng_states`);
- :class:`RNGStateHook` puts them back on resume, at the moment the uninterrupted run was
  at: after mmengine has advanced the dataloader past the consumed batches (that replay
  draws random numbers of its own) and before the next batch is loaded;
- validation inside training is RNG-neutral (the hook restores the training state after
  it), so a checkpoint followed by a validation resumes like one without.

The data order needs the same sampler seed: mmengine restores the checkpoint's seed only
after the dataloader is built, so ``tools/train.py --resume`` sets ``randomness.seed`` from
the checkpoint before building the runner.
"""
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS


def get_rng_state() -> Dict[str, Any]:
    """The global RNG states of this process: ``python``, ``numpy``, ``torch`` (CPU) and,
    where CUDA is initialised, ``cuda`` (one per device)."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    python = state['python']
    # weights_only loading may turn the inner tuple into a list
    random.setstate((python[0], tuple(python[1]), python[2]))
    np.random.set_state(tuple(state['numpy']))
    torch.set_rng_state(torch.as_tensor(state['torch'], dtype=torch.uint8).cpu())
    if 'cuda' in state and torch.cuda.is_available():
        cuda = list(state['cuda'])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu()
                                          for s in cuda])


def _rng_hook(runner) -> Optional['RNGStateHook']:
    for hook in getattr(runner, 'hooks', []):
        if isinstance(hook, RNGStateHook):
            return hook
    return None


def collect_rng_states(runner) -> List[Dict[str, Any]]:
    """The training RNG state of every rank (a collective when distributed).

    Inside a validation run by the training loop, the state from before it (the hook
    restores that one afterwards).
    """
    from mmengine.dist import all_gather_object, get_world_size
    hook = _rng_hook(runner)
    state = hook.training_rng_state() if hook is not None else get_rng_state()
    if get_world_size() > 1:
        return all_gather_object(state)
    return [state]


class _RestoreAfterSkip:
    """Wraps the iteration-based loop's dataloader iterator: after ``skip`` batches (mmengine's
    replay of the consumed data), restore ``state`` before loading the next one."""

    def __init__(self, iterator, skip: int, state: Dict[str, Any]) -> None:
        self._iterator, self._skip, self._state = iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self._state is not None:
            if self._skip == 0:
                set_rng_state(self._state)
                self._state = None
            else:
                self._skip -= 1
        return next(self._iterator)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._iterator, name)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Restores the RNG states of a resumed checkpoint and keeps validation RNG-neutral.

    In ``configs/_base_/default_runtime.py`` (``default_hooks.rng_state``); ``tools/train.py``
    adds it to configs that lack it. Checkpoints without RNG states (older ones) resume
    with the seed only, with a warning.
    """
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._loaded: Optional[List[Dict[str, Any]]] = None
        self._resumable_without_states = False
        self._val_snapshot: Optional[Dict[str, Any]] = None
        self._training = False

    def training_rng_state(self) -> Dict[str, Any]:
        return self._val_snapshot if self._val_snapshot is not None else get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        self._loaded = meta.get('rng_states') if isinstance(meta, dict) else None
        self._resumable_without_states = isinstance(meta, dict) and 'iter' in meta

    def before_train(self, runner) -> None:
        self._training = True
        resumed = runner.iter > 0 or runner.epoch > 0
        if not resumed:
            return
        if self._loaded is None:
            if self._resumable_without_states:
                print_log('RNGStateHook: the checkpoint holds no RNG states (written before '
                          'they were saved): only the seed is restored, so the resumed run '
                          'will not repeat the uninterrupted one exactly', logger='current',
                          level=30)
            return
        states, self._loaded = self._loaded, None
        if len(states) != runner.world_size:
            print_log(f'RNGStateHook: the checkpoint holds the RNG states of {len(states)} '
                      f'processes, this run has {runner.world_size}: only the seed is '
                      f'restored', logger='current', level=30)
            return
        state = states[runner.rank]
        loop = runner.train_loop
        skip = getattr(loop, '_iter', 0)
        if hasattr(loop, 'dataloader_iterator') and skip > 0:
            # IterBasedTrainLoop replays `skip` batches after before_train: restore after.
            loop.dataloader_iterator = _RestoreAfterSkip(loop.dataloader_iterator, skip, state)
        else:
            set_rng_state(state)

    def after_train(self, runner) -> None:
        self._training = False

    def before_val(self, runner) -> None:
        if self._training:
            self._val_snapshot = get_rng_state()

    def after_val(self, runner) -> None:
        if self._val_snapshot is not None:
            set_rng_state(self._val_snapshot)
            self._val_snapshot = None
