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
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

# the diff itself is the library's (the resume check compares model configs with it too)
from projects.common.config_check import config_diff, format_change  # noqa: E402


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
    sys.exit(main())
