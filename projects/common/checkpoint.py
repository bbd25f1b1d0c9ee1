"""Safe and atomic checkpoints for mmengine 0.10.7 on torch >= 2.6.

Two problems with mmengine 0.10.7 on a current PyTorch:

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and mmengine's own
   checkpoints hold numpy arrays and ``HistoryBuffer`` objects, so ``--resume`` and
   ``load_from`` fail. Turning ``weights_only`` off would execute whatever a checkpoint
   file pickles. Instead we keep ``weights_only=True`` and allow exactly the extra types
   mmengine writes (:data:`SAFE_CHECKPOINT_GLOBALS`). Anything else is refused with an
   error naming the file and the offending global.
2. mmengine writes a checkpoint straight to its final path: a run killed mid-write
   leaves a truncated file that ``--resume`` then picks up. We write to a temporary file
   in the same directory, fsync, and ``os.replace`` it into place (readable as ``open()``
   would make it, not mkstemp's 0600); ``CheckpointHook`` removes the temp files of killed
   saves when a run starts.
3. ``CheckpointHook`` deletes the oldest checkpoint *before* writing the new one (with
   ``max_keep_ckpts=1`` a kill then loses every checkpoint) and the best checkpoint the
   same way. Here the new file is complete on disk, and ``last_checkpoint`` (written
   atomically) names it, before anything is removed.
"""
import io
import os
import os.path as osp
import pickle
import tempfile
import zipfile
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import checkpoint as mm_checkpoint


def _numpy_globals() -> List[Any]:
    """numpy objects that pickled arrays, dtypes and scalars refer to."""
    try:  # numpy >= 2 moved the C modules to numpy._core
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - depends on the numpy version
        from numpy.core import multiarray
    items: List[Any] = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # Concrete dtype classes (np.dtypes.Float64DType, ...) appear when a dtype is pickled.
    dtypes_mod = getattr(np, 'dtypes', None)
    if dtypes_mod is not None:
        items += [getattr(dtypes_mod, name) for name in dir(dtypes_mod) if name.endswith('DType')]
    return items


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stands in for ``builtins.getattr`` while unpickling.

    mmengine pickles ``HistoryBuffer.statistics_methods`` as ``getattr(HistoryBuffer,
    'mean')`` and so on. A general ``getattr`` would let a crafted file reach any attribute
    of an allowed type (``ndarray.tofile`` writes files), so only those lookups pass.
    """
    # The built-in statistics are registered lazily (on the first HistoryBuffer), so in a
    # fresh process the registry may still be empty: name them explicitly.
    allowed = {'min', 'max', 'current', 'mean'} | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}), which is not allowed')


#: The globals a checkpoint may reference beyond what ``weights_only`` allows by default.
SAFE_CHECKPOINT_GLOBALS: List[Any] = [HistoryBuffer] + _numpy_globals() + [
    (_history_buffer_getattr, 'builtins.getattr')
]


def safe_load_checkpoint(filename: str, map_location: Any = None, mmap: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True`` and the mmengine allow-list.

    Args:
        filename (str): a local checkpoint.
        map_location: as for ``torch.load``.
        mmap (bool): memory-map the file (cheap when only part of it is read, e.g. the
            meta); ignored for the legacy non-zip format.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        RuntimeError: the file is not a loadable checkpoint, or it references a global
            outside :data:`SAFE_CHECKPOINT_GLOBALS` (it is refused, never executed).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    mmap = mmap and zipfile.is_zipfile(filename)
    try:
        with torch.serialization.safe_globals(SAFE_CHECKPOINT_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True,
                              mmap=mmap)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, zip errors...
        raise RuntimeError(
            f'Refusing to load checkpoint {filename}: it is corrupt or holds objects outside '
            f'the allow-list of safe types (projects/common/checkpoint.py). Nothing from it '
            f'was executed. Details: {err}') from err


#: Prefix of the temporary files :func:`atomic_save_checkpoint` writes before the rename.
TMP_PREFIX = '.tmp_'


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def atomic_write_bytes(data, filename: str) -> None:
    """Write ``data`` to ``filename`` atomically: temp file in the same directory, fsync,
    mode ``0o666 & ~umask`` (what ``open()`` would give; ``mkstemp`` alone gives 0600),
    rename. A failure leaves ``filename`` as it was and removes the temp file; a kill leaves
    a ``.tmp_*`` file that :func:`remove_stale_temp_files` cleans."""
    dirname = osp.dirname(osp.abspath(filename))
    os.makedirs(dirname, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + osp.basename(filename) + '.', suffix='.part',
                               dir=dirname)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, filename)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def remove_stale_temp_files(dirname: str) -> List[str]:
    """Remove the ``.tmp_*`` files that killed atomic writes left in ``dirname``.

    Returns:
        list[str]: the removed paths.
    """
    removed = []
    if not osp.isdir(dirname):
        return removed
    for name in sorted(os.listdir(dirname)):
        path = osp.join(dirname, name)
        # '.part': ours; '.pth': what the previous version of atomic_save_checkpoint named them
        if name.startswith(TMP_PREFIX) and name.endswith(('.part', '.pth')) and \
                osp.isfile(path):
            try:
                os.remove(path)
                removed.append(path)
            except OSError:  # pragma: no cover - removed concurrently
                pass
    return removed


def atomic_save_checkpoint(checkpoint: dict,
                           filename: str,
                           file_client_args: Optional[dict] = None,
                           backend_args: Optional[dict] = None) -> None:
    """Drop-in for ``mmengine.runner.checkpoint.save_checkpoint`` that never leaves a
    partial file at ``filename``: temp file in the same directory, fsync, rename
    (:func:`atomic_write_bytes`).

    Remote URIs (``s3://``, ``pavi://``, ...) are handed to mmengine unchanged.
    """
    if '://' in filename:
        return _MMENGINE_SAVE(checkpoint, filename, file_client_args, backend_args)
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    atomic_write_bytes(buf.getbuffer(), filename)


# --------------------------------------------------------------------------- CheckpointHook
def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
    """``CheckpointHook._save_checkpoint_with_step`` with the order that loses nothing.

    mmengine removes the oldest checkpoint *before* writing the new one, so with
    ``max_keep_ckpts=1`` a kill during the write leaves no checkpoint and a
    ``last_checkpoint`` naming a deleted file. Here: (1) write the new checkpoint
    (atomically), (2) point ``last_checkpoint`` at it (atomically), (3) only then remove the
    checkpoints beyond ``max_keep_ckpts``. The RNG states of every rank go into ``meta`` so
    ``--resume`` continues the random streams exactly (see :mod:`.rng`).
    """
    from mmengine.dist import is_main_process

    from .rng import collect_rng_states
    to_remove = []
    if self.max_keep_ckpts > 0:
        # _save_checkpoint and _save_best_checkpoint may both call this in one epoch
        if not (len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                to_remove.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            # recorded before saving, so the checkpoint holds the list it belongs to
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

    ckpt_filename = self.filename_tmpl.format(step)
    self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
    runner.message_hub.update_info('last_ckpt', self.last_ckpt)
    # The new checkpoint records what is to be removed once it is complete: a run resumed
    # from it finishes a removal that a kill interrupted (see _wrap_before_train).
    doomed = [self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(s))
              for s in to_remove]
    doomed = [p for p in doomed if p != self.last_ckpt]
    runner.message_hub.update_info(_PENDING_REMOVAL, doomed)
    meta = dict(meta or {})
    meta['rng_states'] = collect_rng_states(runner)  # a collective: every rank calls it

    runner.save_checkpoint(
        self.out_dir,
        ckpt_filename,
        self.file_client_args,
        save_optimizer=self.save_optimizer,
        save_param_scheduler=self.save_param_scheduler,
        meta=meta,
        by_epoch=self.by_epoch,
        backend_args=self.backend_args,
        **self.args)

    if not is_main_process():
        return
    atomic_write_bytes(str(self.last_ckpt).encode(), osp.join(runner.work_dir, 'last_checkpoint'))
    _remove_checkpoints(self.file_backend, doomed)
    runner.message_hub.update_info(_PENDING_REMOVAL, [])


_PENDING_REMOVAL = 'ckpts_pending_removal'


def _remove_checkpoints(backend, paths: List[str]) -> None:
    for path in paths:
        if backend.isfile(path):
            backend.remove(path)
        elif backend.isdir(path):  # checkpoints saved by deepspeed are directories
            backend.rmtree(path)


class _DeferredRemoval:
    """Stands in for a hook's ``file_backend`` while it saves a best checkpoint: removals
    are queued and run only after the new file is written."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.pending: List[Tuple[str, str]] = []

    def remove(self, path: str) -> None:
        self.pending.append(('remove', path))

    def rmtree(self, path: str) -> None:
        self.pending.append(('rmtree', path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def _wrap_save_best(original: Callable) -> Callable:

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's ``_save_best_checkpoint``, removing the previous best only after the
        new best is on disk."""
        backend = self.file_backend
        proxy = _DeferredRemoval(backend)
        self.file_backend = proxy
        try:
            original(self, runner, metrics)
        finally:
            self.file_backend = backend
        current = {getattr(self, 'best_ckpt_path', None)}
        current |= set((getattr(self, 'best_ckpt_path_dict', None) or {}).values())
        for op, path in proxy.pending:
            if path not in current:
                getattr(backend, op)(path)

    return _save_best_checkpoint


def _wrap_before_train(original: Callable) -> Callable:

    def before_train(self, runner) -> None:
        """mmengine's ``before_train``, then finish what a killed save left: its temp files,
        and the old checkpoints the resumed checkpoint was to replace."""
        from mmengine.dist import is_main_process
        original(self, runner)
        if not is_main_process():
            return
        if '://' not in str(self.out_dir):
            for path in remove_stale_temp_files(str(self.out_dir)):
                runner.logger.info(f'Removed {path}, the temp file of an interrupted save')
        pending = runner.message_hub.get_info(_PENDING_REMOVAL) or []
        resumed = runner.message_hub.get_info('last_ckpt')
        # only in this run's own folder (a checkpoint copied elsewhere must not reach back)
        here = osp.abspath(str(self.out_dir))
        pending = [p for p in pending
                   if p != resumed and osp.dirname(osp.abspath(str(p))) == here]
        if pending:
            _remove_checkpoints(self.file_backend, pending)
            runner.logger.info(f'Removed {pending}: replaced by the resumed checkpoint, their '
                               f'removal had been interrupted')
        runner.message_hub.update_info(_PENDING_REMOVAL, [])

    return before_train


_MMENGINE_SAVE: Callable = mm_checkpoint.save_checkpoint
_INSTALLED = False


def install_checkpoint_safety() -> None:
    """Route mmengine's local checkpoint loading and saving through the functions above,
    and make ``CheckpointHook`` write before it deletes.

    Idempotent. Called on ``import projects.common`` (which every project package does),
    so configs that ``custom_imports`` a project get it too.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.hooks import CheckpointHook
    from mmengine.runner import runner as mm_runner

    # Loading: '' is the scheme of local paths in mmengine's CheckpointLoader.
    mm_checkpoint.CheckpointLoader.register_scheme(prefixes='', force=True)(safe_load_checkpoint)
    # Saving: Runner.save_checkpoint calls the name it imported into its own module.
    mm_checkpoint.save_checkpoint = atomic_save_checkpoint
    mm_runner.save_checkpoint = atomic_save_checkpoint
    # Keeping: the new checkpoint is complete on disk before any old one is removed.
    CheckpointHook._save_checkpoint_with_step = _save_checkpoint_with_step
    CheckpointHook._save_best_checkpoint = _wrap_save_best(CheckpointHook._save_best_checkpoint)
    CheckpointHook.before_train = _wrap_before_train(CheckpointHook.before_train)
    _INSTALLED = True
