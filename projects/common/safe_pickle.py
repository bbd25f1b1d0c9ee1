"""Load ``.pkl`` files (info files, ``--out`` results) without executing anything.

``pickle.load`` runs whatever callable a file names: a crafted info file or predictions
file would run code through ``tools/test.py``, ``tools/analysis/visualize.py`` or the
metric. :class:`SafeUnpickler` resolves only the globals of :data:`SAFE_PICKLE_GLOBALS`:

- plain containers and numbers (``set``, ``frozenset``, ``OrderedDict``, ``deque``,
  ``complex``, ``slice``, ``range``, ``bytearray``), bytes as protocol 2 writes them
  (``_codecs.encode`` with latin-1 only);
- numpy arrays, dtypes and scalars (what ``tools/create_data.py`` writes);
- torch tensors as plain ``pickle`` writes them; their storage bytes are read with
  ``torch.load(weights_only=True)`` instead of torch's own ``weights_only=False``;
- the data structures ``tools/test.py --out`` may hold: mmengine's
  ``BaseDataElement`` / ``InstanceData`` / ``PixelData`` / ``LabelData``, mmdet's
  ``DetDataSample`` and our ``Det3DDataSample``. They are rebuilt without calling
  ``__init__`` (``object.__new__`` + their attribute dict): pure data, no code.

Anything else is refused with :class:`UnsafePickleError`, naming the file and the global.

:func:`install_pickle_safety` (called on ``import projects.common``) registers
:class:`SafePickleHandler` for ``.pkl`` / ``.pickle`` in mmengine's file handlers, so
``mmengine.load`` -- and with it ``BaseDataset``'s ``ann_file`` loading -- is safe everywhere.
"""
import _compat_pickle
import copyreg
import io
import os.path as osp
import pickle
import sys
from collections import OrderedDict, deque
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from mmengine.fileio import io as mm_io
from mmengine.fileio.handlers import PickleHandler, file_handlers


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle references a global outside :data:`SAFE_PICKLE_GLOBALS`."""


def _codecs_encode(obj: str, encoding: str = 'utf-8', errors: str = 'strict') -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for ``bytes`` (latin-1 only)."""
    if encoding.lower().replace('_', '-') not in ('latin1', 'latin-1') or not isinstance(obj, str):
        raise UnsafePickleError(f'the pickle calls _codecs.encode with encoding {encoding!r}')
    return obj.encode('latin-1', errors)


def _storage_from_bytes(data: bytes) -> Any:
    """Stands in for ``torch.storage._load_from_bytes`` (which uses ``weights_only=False``)."""
    try:
        return torch.load(io.BytesIO(data), weights_only=True)
    except pickle.UnpicklingError as err:
        detail = [line for line in str(err).splitlines() if 'GLOBAL' in line]
        raise UnsafePickleError('a tensor storage in it holds more than tensor data'
                                + (f' ({detail[0].strip()})' if detail else '')) from err


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` limited to ``object`` as the base (protocol 0/1 objects)."""
    if base is not object:
        raise UnsafePickleError(f'the pickle calls copyreg._reconstructor with base {base!r}')
    return copyreg._reconstructor(cls, base, state)


def _numpy_globals() -> Dict[Tuple[str, str], Any]:
    items: Dict[Tuple[str, str], Any] = {('numpy', 'ndarray'): np.ndarray,
                                         ('numpy', 'dtype'): np.dtype}
    try:  # numpy >= 2 moved the C modules to numpy._core; files may name either
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - depends on the numpy version
        from numpy.core import multiarray
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        items[(mod, '_reconstruct')] = multiarray._reconstruct
        items[(mod, 'scalar')] = multiarray.scalar
    dtypes_mod = getattr(np, 'dtypes', None)
    if dtypes_mod is not None:
        for name in dir(dtypes_mod):
            if name.endswith('DType'):
                items[('numpy.dtypes', name)] = getattr(dtypes_mod, name)
    return items


def _torch_globals() -> Dict[Tuple[str, str], Any]:
    from torch import _utils
    items: Dict[Tuple[str, str], Any] = {
        ('torch._utils', '_rebuild_tensor_v2'): _utils._rebuild_tensor_v2,
        ('torch._utils', '_rebuild_tensor'): _utils._rebuild_tensor,
        ('torch._utils', '_rebuild_parameter'): _utils._rebuild_parameter,
        ('torch.storage', '_load_from_bytes'): _storage_from_bytes,
        ('torch', 'Size'): torch.Size,
        ('torch', 'device'): torch.device,
    }
    for name in ('float16', 'bfloat16', 'float32', 'float64', 'uint8', 'int8', 'int16',
                 'int32', 'int64', 'bool'):
        items[('torch', name)] = getattr(torch, name)
    return items


def _structure_globals() -> Dict[Tuple[str, str], Any]:
    """The data-sample classes a ``--out`` file may hold (rebuilt as data, see above)."""
    from mmengine.structures import BaseDataElement, InstanceData, LabelData, PixelData
    items: Dict[Tuple[str, str], Any] = {}
    for cls in (BaseDataElement, InstanceData, LabelData, PixelData):
        items[('mmengine.structures.' + cls.__module__.split('.')[-1], cls.__name__)] = cls
        items[('mmengine.structures', cls.__name__)] = cls
    try:
        from mmdet.structures import DetDataSample
        items[('mmdet.structures.det_data_sample', 'DetDataSample')] = DetDataSample
    except ImportError:  # pragma: no cover - mmdet is part of the pinned stack
        pass
    return items


def _project_structure_globals() -> Dict[Tuple[str, str], Any]:
    # Imported lazily: projects.bevformer imports this package.
    try:
        from projects.bevformer.structures.data_sample import Det3DDataSample
    except ImportError:  # pragma: no cover - the 2D project alone
        return {}
    return {('projects.bevformer.structures.data_sample', 'Det3DDataSample'): Det3DDataSample}


_BASE_GLOBALS: Dict[Tuple[str, str], Any] = {
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('builtins', 'complex'): complex,
    ('builtins', 'slice'): slice,
    ('builtins', 'range'): range,
    ('builtins', 'bytearray'): bytearray,
    ('builtins', 'object'): object,
    ('collections', 'OrderedDict'): OrderedDict,
    ('collections', 'deque'): deque,
    ('_codecs', 'encode'): _codecs_encode,
    ('copyreg', '_reconstructor'): _reconstructor,
}

#: (module, name) -> object: everything a safe pickle may reference (lazily completed).
SAFE_PICKLE_GLOBALS: Dict[Tuple[str, str], Any] = {}


def _safe_globals() -> Dict[Tuple[str, str], Any]:
    if not SAFE_PICKLE_GLOBALS:
        SAFE_PICKLE_GLOBALS.update(_BASE_GLOBALS)
        SAFE_PICKLE_GLOBALS.update(_numpy_globals())
        SAFE_PICKLE_GLOBALS.update(_torch_globals())
        SAFE_PICKLE_GLOBALS.update(_structure_globals())
    for key, value in _project_structure_globals().items():
        SAFE_PICKLE_GLOBALS.setdefault(key, value)
    return SAFE_PICKLE_GLOBALS


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`SAFE_PICKLE_GLOBALS`.

    Args:
        file: a binary file object.
        name (str, optional): the file's name, for error messages.
    """

    def __init__(self, file, name: Optional[str] = None, **kwargs) -> None:
        super().__init__(file, **kwargs)
        self.name = name

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 files use Python 2 names (__builtin__.set, copy_reg, ...).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        obj = _safe_globals().get((module, name))
        if obj is None:
            raise UnsafePickleError(f'the pickle references {module}.{name}')
        return obj

    def load(self) -> Any:
        try:
            return super().load()
        except UnsafePickleError as err:
            where = f'{self.name}: ' if self.name else ''
            raise UnsafePickleError(
                f'{where}refusing to load: {err}, which is not in the allow-list of plain '
                f'data types (projects/common/safe_pickle.py); nothing from the file was '
                f'executed') from None


def safe_pickle_load(file, name: Optional[str] = None, **kwargs) -> Any:
    """Unpickle from a path or a binary file object with :class:`SafeUnpickler`.

    Raises:
        FileNotFoundError: a path that does not exist.
        UnsafePickleError: the file references a global outside the allow-list (named,
            with the file's name).
    """
    if isinstance(file, (str, bytes)) or hasattr(file, '__fspath__'):
        path = osp.expanduser(str(file))
        if not osp.isfile(path):
            raise FileNotFoundError(f'no such file: {path}')
        with open(path, 'rb') as f:
            return SafeUnpickler(f, name=name or path, **kwargs).load()
    name = name or getattr(file, 'name', None)
    return SafeUnpickler(file, name=name, **kwargs).load()


def _caller_file_name() -> Optional[str]:
    """The path ``mmengine.fileio.load`` was given, when it is the caller.

    mmengine reads the file into a ``BytesIO`` before handing it to the handler, so the
    handler cannot see the name: read it from the calling frame, only when that frame is
    mmengine's ``load`` (its local ``file``).
    """
    frame = sys._getframe(2)  # 0: here, 1: SafePickleHandler.load_from_fileobj
    if frame.f_code is mm_io.load.__code__:
        value = frame.f_locals.get('file')
        return value if isinstance(value, str) else None
    return None


class SafePickleHandler(PickleHandler):
    """mmengine's pickle handler with :class:`SafeUnpickler` for loading (dumping as before)."""

    def load_from_fileobj(self, file, **kwargs) -> Any:
        name = getattr(file, 'name', None) or _caller_file_name()
        return safe_pickle_load(file, name=name, **kwargs)


_INSTALLED = False


def install_pickle_safety() -> None:
    """Register :class:`SafePickleHandler` for ``.pkl`` / ``.pickle`` (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    handler = SafePickleHandler()
    for ext in ('pickle', 'pkl'):
        file_handlers[ext] = handler
    _INSTALLED = True

