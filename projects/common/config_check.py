"""Config checks for the tools: misspelled top-level keys, ``--cfg-options`` syntax, the
reliability hooks every training run gets, and the key-by-key diff of two resolved configs
(``tools/analysis/config_diff.py``, the leaderboard, the resume check).

mmengine's ``Runner.from_cfg`` reads the keys it knows and ignores the rest, so
``trian_dataloader = ...`` or ``optim_wraper = ...`` was silently ignored. Text configs also
hold helper variables at the top level (``bev_h = 200``), so an unknown key is not an error
by itself: one that is *close to* a key the runner reads (difflib ratio >= 0.8) is.
"""
import difflib
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from mmengine.config import Config, DictAction

#: Top-level keys read by mmengine's Runner / tools (and by our tools).
RUNNER_KEYS = frozenset({
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader',
    'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
    'val_evaluator', 'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor',
    'load_from', 'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'custom_imports', 'model_wrapper_cfg',
    'compile', 'find_unused_parameters', 'runner_type', 'vis_backends', 'load_partial',
    'strategy', 'cfg', 'gpu_ids', 'dist_params',
})


def misspelled_keys(keys: Iterable[str], known: Iterable[str] = RUNNER_KEYS) -> Dict[str, str]:
    """Unknown keys that look like a known one: ``{key: closest known key}``."""
    known = set(known)
    out = {}
    for key in keys:
        if key in known or key.startswith('_'):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
        if close:
            out[key] = close[0]
    return out


def check_config_keys(cfg: Config, source: str = 'the config') -> None:
    """Raise ``KeyError`` for a top-level key that is a misspelling of one the runner reads."""
    bad = misspelled_keys(cfg.keys())
    if bad:
        listed = '; '.join(f'{k!r} (did you mean {v!r}?)' for k, v in sorted(bad.items()))
        raise KeyError(f'{source}: unknown top-level key {listed}. mmengine ignores keys it '
                       f'does not know, so the setting would have no effect.')


class StrictDictAction(DictAction):
    """mmengine's ``DictAction`` with a clear error for an item that is not ``key=value``
    (mmengine: 'not enough values to unpack')."""

    def __call__(self, parser, namespace, values, option_string=None):
        bad: List[str] = [kv for kv in values if '=' not in kv]
        if bad:
            parser.error(f'{option_string}: {", ".join(repr(b) for b in bad)} is not of the form '
                         f'key=value (e.g. train_cfg.max_iters=10 or '
                         f'model.backbone.depth=18)')
        try:
            super().__call__(parser, namespace, values, option_string)
        except Exception as err:  # a malformed value, e.g. unbalanced brackets
            parser.error(f'{option_string}: cannot parse {values}: {err}')


def add_reliability_hooks(cfg: Config) -> None:
    """Give a training config the non-finite check and the RNG-state hook when it lacks them
    (``configs/_base_/default_runtime.py`` has both as ``default_hooks.finite_check`` and
    ``default_hooks.rng_state``)."""
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = hooks = {}
    present = {h.get('type') for h in list(hooks.values()) + list(cfg.get('custom_hooks') or [])
               if isinstance(h, dict)}
    if 'NonFiniteCheckHook' not in present and 'finite_check' not in hooks:
        hooks['finite_check'] = dict(type='NonFiniteCheckHook')
    if 'RNGStateHook' not in present and 'rng_state' not in hooks:
        hooks['rng_state'] = dict(type='RNGStateHook')


#: keys that say where or when a run happened, or where its outputs go, not what it computes
IGNORED_KEYS = ('work_dir', 'launcher', 'filename', 'resume', 'load_from')
IGNORED_LEAVES = ('jsonfile_prefix', 'out_file_path', 'out_dir', 'test_out_dir', 'show_dir')
_MISSING = '<absent>'


def _is_container(value: Any) -> bool:
    return isinstance(value, (dict, list, tuple))


def _plain(value: Any) -> Any:
    """Tuples as lists (configs round-trip tuples to lists), ConfigDicts as dicts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _diff(a: Any, b: Any, prefix: str, out: List[Tuple[str, Any, Any]],
          ignored_leaves: Sequence[str]) -> None:
    """Recursive diff; a subtree present on one side only is reported whole."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            name = f'{prefix}.{key}' if prefix else str(key)
            if name in IGNORED_KEYS or str(key) in ignored_leaves:
                continue
            _diff(a.get(key, _MISSING), b.get(key, _MISSING), name, out, ignored_leaves)
    elif (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
          and any(_is_container(v) for v in list(a) + list(b))):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f'{prefix}.{i}', out, ignored_leaves)
    elif _plain(a) != _plain(b):
        out.append((prefix, _plain(a), _plain(b)))


def resolved(config: Any) -> Dict[str, Any]:
    """A config file / Config / dict -> its resolved dict."""
    if isinstance(config, str):
        config = Config.fromfile(config)
    return config.to_dict() if isinstance(config, Config) else dict(config)


def config_diff(base: Any, other: Any,
                ignored_leaves: Sequence[str] = IGNORED_LEAVES) -> List[Tuple[str, Any, Any]]:
    """Keys whose resolved values differ: ``[(dotted key, base value, other value)]``, sorted;
    ``'<absent>'`` stands for what one of them does not have (a whole subtree is one entry).
    Keys named in ``ignored_leaves`` are skipped wherever they are."""
    out: List[Tuple[str, Any, Any]] = []
    _diff(resolved(base), resolved(other), '', out, tuple(ignored_leaves))
    return out


def format_change(key: str, old: Any, new: Any) -> str:
    return f'{key}: {old!r} → {new!r}'
