"""Checkpoints that do not fit are refused; ``--resume`` says what is wrong.

mmengine's ``Runner`` loads ``load_from`` (and ``tools/test.py``'s checkpoint) with
``strict=False``: a checkpoint of another model (0 matching keys) or of another config
(shape mismatches) is evaluated with whatever weights it got, and only a log line says so.
:func:`install_loading_checks` (called on ``import projects.common``) changes
``Runner.load_checkpoint``, ``Runner.resume`` and ``Runner.load_or_resume``:

- loading is strict unless the config sets ``load_partial = True`` (``--partial-load`` in
  the tools): :class:`CheckpointMismatchError` names the file and the missing, unexpected
  and mis-shaped keys, and the tensors holding NaN / inf (a diverged run's weights). BN
  ``num_batches_tracked`` may be missing (a counter, filled by BN itself, as mmengine
  does); non-persistent buffers are not in any state dict.
  Partial loading loads what fits and logs the same lists as a warning.
- ``--resume`` with a weights-only file, an empty ``last_checkpoint`` or one naming a
  missing file stops with an error naming the file (and the newest checkpoint found).
- ``--resume`` of a checkpoint whose run had another ``model`` config (e.g. a work dir left
  by an earlier recipe) stops with the differing keys (:func:`check_same_model`): resuming it
  would continue one run under another recipe. The schedule may change (a longer run).
"""
import glob
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch.nn.modules.module import _IncompatibleKeys


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's state dict does not fit the model."""


def _fmt_keys(keys: Sequence[str], limit: int = 10) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def describe_mismatch(missing: Sequence[str], unexpected: Sequence[str],
                      mismatched: Sequence[Tuple[str, tuple, tuple]], matched: int,
                      num_model_keys: int, num_ckpt_keys: int,
                      errors: Sequence[str] = ()) -> str:
    """A multi-line summary of what does not fit (empty when everything fits)."""
    lines = []
    if missing:
        lines.append(f'  missing in the checkpoint ({len(missing)}): {_fmt_keys(missing)}')
    if unexpected:
        lines.append(f'  unexpected (not in the model) ({len(unexpected)}): '
                     f'{_fmt_keys(unexpected)}')
    if mismatched:
        shown = [f'{k} {tuple(c)} in the checkpoint vs {tuple(m)} in the model'
                 for k, c, m in mismatched]
        lines.append(f'  shape mismatch ({len(mismatched)}): {_fmt_keys(shown, 5)}')
    for err in errors:
        lines.append(f'  {err}')
    if not lines:
        return ''
    head = (f'{matched} of the model\'s {num_model_keys} keys load from the checkpoint\'s '
            f'{num_ckpt_keys}')
    return '\n'.join([head] + lines)


def load_state_dict_checked(module, state_dict: Dict[str, Any], strict: bool = True,
                            filename: str = 'the checkpoint',
                            logger=None) -> _IncompatibleKeys:
    """Load ``state_dict`` into ``module`` through the modules' own ``_load_from_state_dict``
    (so version conversions still apply), collecting everything that does not fit.

    Args:
        module (nn.Module): the model (wrappers are unwrapped).
        state_dict (dict): key -> tensor (``_metadata`` kept).
        strict (bool): raise :class:`CheckpointMismatchError` unless every key fits (then
            the model may hold part of the checkpoint: do not use it); else load what fits
            and log the rest.
        filename (str): named in the messages.

    Returns:
        ``_IncompatibleKeys(missing_keys, unexpected_keys)``.
    """
    if is_model_wrapper(module):
        module = module.module
    own = module.state_dict()
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
                  if k in own and hasattr(v, 'shape') and hasattr(own[k], 'shape')
                  and tuple(v.shape) != tuple(own[k].shape)]
    # before loading: own's tensors share storage with the model
    own_nonfinite = {k for k, v in own.items()
                     if isinstance(v, torch.Tensor) and v.is_floating_point()
                     and not bool(torch.isfinite(v).all())}
    missing: List[str] = []
    unexpected: List[str] = []
    errors: List[str] = []
    metadata = getattr(state_dict, '_metadata', None)

    def load(mod, local_state_dict, prefix=''):
        if is_model_wrapper(mod):
            mod = mod.module
        local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
        mod._load_from_state_dict(local_state_dict, prefix, local_metadata, True, missing,
                                  unexpected, errors)
        for name, child in mod._modules.items():
            if child is not None:
                child_prefix = prefix + name + '.'
                load(child, {k: v for k, v in local_state_dict.items()
                             if k.startswith(child_prefix)}, child_prefix)
        incompatible = _IncompatibleKeys(missing, unexpected)
        for hook in getattr(mod, '_load_state_dict_post_hooks', {}).values():
            hook(mod, incompatible)

    load(module, OrderedDict(state_dict))
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    mismatched_keys = {k for k, _, _ in mismatched}
    errors = [e for e in errors
              if not (e.startswith('size mismatch for ') and
                      e[len('size mismatch for '):].split(':')[0] in mismatched_keys)]
    matched = sum(1 for k, v in own.items() if k in state_dict and k not in mismatched_keys)
    summary = describe_mismatch(missing, unexpected, mismatched, matched, len(own),
                                len(state_dict), errors)
    nonfinite = _nonfinite_keys(state_dict, own_nonfinite)
    if nonfinite:
        summary += ('\n' if summary else '') + (
            f'  NaN / inf in {len(nonfinite)} of its {len(state_dict)} tensors (a diverged '
            f'run?): {_fmt_keys(nonfinite)}')
    if summary and strict:
        raise CheckpointMismatchError(
            f'{filename} does not fit the model: {summary.lstrip()}\n'
            f'Nothing was evaluated or trained with it. If you mean to load only the part '
            f'that fits (e.g. a pretrained backbone), pass --partial-load to tools/train.py '
            f'/ tools/test.py (config: load_partial = True).')
    if summary:
        print_log(f'Partial loading of {filename}: {summary.lstrip()}',
                  logger=logger or 'current', level=30)
    return _IncompatibleKeys(missing, unexpected)


def _nonfinite_keys(state_dict: Dict[str, Any], allowed: set) -> List[str]:
    """Floating tensors of the checkpoint holding NaN / inf, except keys in ``allowed`` (where
    the model itself holds them, e.g. a mask buffer of -inf)."""
    return [k for k, v in state_dict.items()
            if k not in allowed and isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


# ------------------------------------------------------------------------------- resume
def newest_checkpoint(work_dir: str) -> Optional[str]:
    """The newest ``*.pth`` in ``work_dir`` by modification time (None when none)."""
    found = [p for p in glob.glob(osp.join(work_dir, '*.pth')) if osp.isfile(p)]
    return max(found, key=osp.getmtime) if found else None


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``work_dir/last_checkpoint`` names; None when there is no such file.

    Raises:
        FileNotFoundError: ``last_checkpoint`` is empty or names a file that does not
            exist (the message names it and the newest checkpoint of the work dir).
    """
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        path = f.read().strip()
    newest = newest_checkpoint(work_dir)
    hint = (f'; the newest checkpoint there is {newest}: pass it explicitly, --resume {newest}'
            if newest else '; the work dir holds no *.pth checkpoint')
    if not path:
        raise FileNotFoundError(f'--resume: {record} is empty (its write was interrupted?), '
                                f'so it names no checkpoint{hint}')
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(f'--resume: {record} names {path}, which does not exist'
                                f'{hint}')
    return path


def check_resumable(checkpoint: Any, filename: str) -> None:
    """Raise ``ValueError`` naming ``filename`` unless it is a training checkpoint."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict) and 'epoch' in meta and 'iter' in meta and \
            'state_dict' in checkpoint:
        return
    keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
    raise ValueError(
        f'--resume {filename}: not a checkpoint written by training (top-level keys {keys}; '
        f'no meta.epoch / meta.iter): it holds weights only, so there is no iteration, '
        f'optimizer or scheduler state to resume. To start a new run from its weights use '
        f'load_from (tools/train.py CONFIG --cfg-options load_from={filename}); to resume, '
        f'pass an iter_*.pth / epoch_*.pth of the interrupted run.')


def check_same_model(checkpoint: Any, cfg: Any, filename: str) -> None:
    """Raise ``ValueError`` naming ``filename`` and the differing keys when the training run
    that wrote it had another ``model`` config than ``cfg`` (its ``meta.cfg``, which mmengine
    stores in every checkpoint). Checkpoints without a readable ``meta.cfg`` pass."""
    from mmengine.config import Config

    from .config_check import config_diff
    text = checkpoint.get('meta', {}).get('cfg') if isinstance(checkpoint, dict) else None
    if not isinstance(text, str) or 'model' not in cfg:
        return
    try:
        old = Config.fromstring(text, '.py')
    except Exception:  # a config text mmengine cannot re-read: nothing to compare
        return
    if 'model' not in old:
        return
    # init_cfg ignored: resuming loads every weight from the checkpoint, and its paths name
    # the clone the run came from
    diffs = [f'{key} ({old_value!r} -> {new_value!r})' for key, old_value, new_value in
             config_diff({'model': old.to_dict()['model']}, {'model': cfg.to_dict()['model']},
                         ignored_leaves=('init_cfg', ))]
    if diffs:
        raise ValueError(
            f'--resume {filename}: that run trained another model config than this one '
            f'({len(diffs)} difference(s): {_fmt_keys(diffs, 5)}); resuming would continue it '
            f'under another recipe. Start afresh in another work dir (--work-dir, or move '
            f'{osp.dirname(osp.abspath(filename))} away), or start from its weights with '
            f'load_from={filename} (--partial-load where shapes differ).')


def read_checkpoint(filename: str) -> Any:
    """Load a checkpoint cheaply (memory-mapped where the format allows) and safely."""
    from .checkpoint import safe_load_checkpoint
    return safe_load_checkpoint(filename, map_location='cpu', mmap=True)


# ------------------------------------------------------------------------- Runner patches
def _load_checkpoint(self, filename: str, map_location: Any = 'cpu',
                     strict: Optional[bool] = None,
                     revise_keys: list = [(r'^module.', '')]):  # noqa: B006 (mmengine's)
    """``Runner.load_checkpoint`` that is strict unless ``strict=False`` is passed or the
    config sets ``load_partial = True``, and validates resume checkpoints first."""
    from mmengine.runner.checkpoint import _load_checkpoint as load_file
    if strict is None:
        strict = not bool(self.cfg.get('load_partial', False))
    checkpoint = load_file(filename, map_location=map_location)
    if getattr(self, '_resuming', False):
        check_resumable(checkpoint, filename)
        check_same_model(checkpoint, self.cfg, filename)
    self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    model = self.model.module if is_model_wrapper(self.model) else self.model
    state_dict = checkpoint['state_dict'] if 'state_dict' in checkpoint else checkpoint
    metadata = getattr(state_dict, '_metadata', OrderedDict())
    for pattern, repl in revise_keys:
        state_dict = OrderedDict((re.sub(pattern, repl, k), v) for k, v in state_dict.items())
    state_dict._metadata = metadata
    load_state_dict_checked(model, state_dict, strict=strict, filename=filename,
                            logger=self.logger)
    self._has_loaded = True
    self.logger.info(f'Load checkpoint from {filename}')
    return checkpoint


def _wrap_resume(original: Callable) -> Callable:

    def resume(self, filename: str, *args, **kwargs):
        self._resuming = True
        try:
            return original(self, filename, *args, **kwargs)
        finally:
            self._resuming = False

    return resume


def _load_or_resume(self) -> None:
    """``Runner.load_or_resume`` with clear messages for auto-resume."""
    if self._has_loaded:
        return None
    resume_from = None
    if self._resume and self._load_from is None:
        resume_from = find_resume_checkpoint(self.work_dir)
        if resume_from is None:
            self.logger.warning(f'--resume: no last_checkpoint in {self.work_dir}: training '
                                f'starts from scratch')
        else:
            self.logger.info(f'Auto resumed from the latest checkpoint {resume_from}.')
    elif self._resume and self._load_from is not None:
        resume_from = self._load_from
    if resume_from is not None:
        self.resume(resume_from)
        self._has_loaded = True
    elif self._load_from is not None:
        self.load_checkpoint(self._load_from)
        self._has_loaded = True


_INSTALLED = False


def install_loading_checks() -> None:
    """Patch ``Runner`` as described in the module docstring (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.runner import Runner
    Runner.load_checkpoint = _load_checkpoint
    Runner.resume = _wrap_resume(Runner.resume)
    Runner.load_or_resume = _load_or_resume
    _INSTALLED = True
