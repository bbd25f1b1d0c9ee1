"""What a config changes against another once ``_base_`` inheritance is resolved.

    .venv/bin/python tools/analysis/config_diff.py CONFIG_A CONFIG_B [--format md|text]

Both configs are loaded with mmengine (bases merged, ``_delete_`` applied) and flattened to
dotted keys; list elements are indexed (``train_dataloader.dataset.pipeline.3.scale_factor``).
Prints every key whose resolved value differs, with both values.
"""
import argparse
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Tuple

from mmengine.config import Config

#: keys that say where or when a run happened, not what it computes
IGNORED_KEYS = ('work_dir', 'launcher', 'filename', 'resume', 'load_from')
_MISSING = '<absent>'


def flatten(value: Any, prefix: str = '') -> Dict[str, Any]:
    """Nested dicts / lists -> {dotted key: leaf value}."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple))
                                                   for v in value):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: list(value) if isinstance(value, tuple) else value}
    out: Dict[str, Any] = {}
    for key, sub in items:
        out.update(flatten(sub, f'{prefix}.{key}' if prefix else str(key)))
    if not out and prefix:
        out[prefix] = {} if isinstance(value, dict) else []
    return out


def resolved(config: Any) -> Dict[str, Any]:
    """A config file / Config -> its flattened resolved dict (ignored keys dropped)."""
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    flat = flatten(cfg.to_dict())
    return {k: v for k, v in flat.items() if k.split('.')[0] not in IGNORED_KEYS}


def config_diff(base: Any, other: Any) -> List[Tuple[str, Any, Any]]:
    """Keys whose resolved values differ: ``[(key, base value, other value)]``, sorted by key;
    ``'<absent>'`` stands for a key one of them does not have."""
    a, b = resolved(base), resolved(other)
    keys = sorted(set(a) | set(b))
    return [(k, a.get(k, _MISSING), b.get(k, _MISSING)) for k in keys
            if a.get(k, _MISSING) != b.get(k, _MISSING)]


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
