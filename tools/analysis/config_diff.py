"""What a config changes against another once ``_base_`` inheritance is resolved.

    .venv/bin/python tools/analysis/config_diff.py CONFIG_A CONFIG_B [--format md|text]

Both configs are loaded with mmengine (bases merged, ``_delete_`` applied) and compared key by
key; list elements are indexed (``train_dataloader.dataset.pipeline.3.scale_factor``) and a
subtree that only one of them has is shown whole. Prints every key whose resolved value
differs, with both values; where a run happened or writes its outputs is ignored.
"""
import argparse
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Tuple

from mmengine.config import Config

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


def _diff(a: Any, b: Any, prefix: str, out: List[Tuple[str, Any, Any]]) -> None:
    """Recursive diff; a subtree present on one side only is reported whole."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            name = f'{prefix}.{key}' if prefix else str(key)
            if name in IGNORED_KEYS or str(key) in IGNORED_LEAVES:
                continue
            _diff(a.get(key, _MISSING), b.get(key, _MISSING), name, out)
    elif (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
          and any(_is_container(v) for v in list(a) + list(b))):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f'{prefix}.{i}', out)
    elif _plain(a) != _plain(b):
        out.append((prefix, _plain(a), _plain(b)))


def resolved(config: Any) -> Dict[str, Any]:
    """A config file / Config -> its resolved dict."""
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    return cfg.to_dict()


def config_diff(base: Any, other: Any) -> List[Tuple[str, Any, Any]]:
    """Keys whose resolved values differ: ``[(dotted key, base value, other value)]``, sorted;
    ``'<absent>'`` stands for what one of them does not have (a whole subtree is one entry)."""
    out: List[Tuple[str, Any, Any]] = []
    _diff(resolved(base), resolved(other), '', out)
    return out


def format_change(key: str, old: Any, new: Any) -> str:
    return f'{key}: {old!r} → {new!r}'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config_a')
    parser.add_argument('config_b')
    args = parser.parse_args(argv)
    for path in (args.config_a, args.config_b):
        if not osp.isfile(path):
            parser.error(f'config not found: {path}')
    diff = config_diff(args.config_a, args.config_b)
    print(f'{args.config_b} against {args.config_a}: {len(diff)} resolved keys differ')
    for key, old, new in diff:
        print('  ' + format_change(key, old, new))
    return 0


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    sys.exit(main())
