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
   in the same directory, fsync, and ``os.replace`` it into place.
"""
import io
import os
import os.path as osp
import pickle
import tempfile
from typing import Any, Callable, List, Optional

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


def safe_load_checkpoint(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and the mmengine allow-list.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        RuntimeError: the file is not a loadable checkpoint, or it references a global
            outside :data:`SAFE_CHECKPOINT_GLOBALS` (it is refused, never executed).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    try:
        with torch.serialization.safe_globals(SAFE_CHECKPOINT_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, zip errors...
        raise RuntimeError(
            f'Refusing to load checkpoint {filename}: it is corrupt or holds objects outside '
            f'the allow-list of safe types (projects/common/checkpoint.py). Nothing from it '
            f'was executed. Details: {err}') from err


def atomic_save_checkpoint(checkpoint: dict,
                           filename: str,
                           file_client_args: Optional[dict] = None,
                           backend_args: Optional[dict] = None) -> None:
    """Drop-in for ``mmengine.runner.checkpoint.save_checkpoint`` that never leaves a
    partial file at ``filename``: temp file in the same directory, fsync, rename.

    Remote URIs (``s3://``, ``pavi://``, ...) are handed to mmengine unchanged.
    """
    if '://' in filename:
        return _MMENGINE_SAVE(checkpoint, filename, file_client_args, backend_args)
    dirname = osp.dirname(osp.abspath(filename))
    os.makedirs(dirname, exist_ok=True)
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    fd, tmp = tempfile.mkstemp(prefix='.tmp_', suffix='.pth', dir=dirname)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


_MMENGINE_SAVE: Callable = mm_checkpoint.save_checkpoint
_INSTALLED = False


def install_checkpoint_safety() -> None:
    """Route mmengine's local checkpoint loading and saving through the functions above.

    Idempotent. Called on ``import projects.common`` (which every project package does),
    so configs that ``custom_imports`` a project get it too.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.runner import runner as mm_runner

    # Loading: '' is the scheme of local paths in mmengine's CheckpointLoader.
    mm_checkpoint.CheckpointLoader.register_scheme(prefixes='', force=True)(safe_load_checkpoint)
    # Saving: Runner.save_checkpoint calls the name it imported into its own module.
    mm_checkpoint.save_checkpoint = atomic_save_checkpoint
    mm_runner.save_checkpoint = atomic_save_checkpoint
    _INSTALLED = True
