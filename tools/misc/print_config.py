"""Print a config as the runner sees it: every ``_base_`` merged, ``--cfg-options`` applied.

    python tools/misc/print_config.py CONFIG [--cfg-options key=value ...] [--save-path out.py]

A ``--cfg-options`` item without ``=`` and a top-level key that looks like a misspelling of
one the runner reads are refused, as in ``tools/train.py``. ``--save-path`` writes the merged
config (``.py``, ``.json`` or ``.yaml``) so that it can be edited or diffed.
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from mmengine.config import Config  # noqa: E402

from projects.common.config_check import StrictDictAction, check_config_keys  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('--cfg-options', nargs='+', action=StrictDictAction,
                        help='override settings, e.g. model.bev_encoder.bev_h=50')
    parser.add_argument('--save-path', help='also write the merged config here')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Config:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    check_config_keys(cfg, args.config)
    print(f'Config:\n{cfg.pretty_text}', flush=True)
    if args.save_path:
        cfg.dump(args.save_path)
        print(f'saved the merged config to {args.save_path}', flush=True)
    return cfg


if __name__ == '__main__':
    main()
