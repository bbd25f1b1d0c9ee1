"""Build info files from a dataset root.

    python tools/create_data.py nuscenes --root-path data/nuscenes --version v1.0-trainval \
        --out-dir data/nuscenes [--extra-tag nuscenes] [--can-bus-root data]

writes <out-dir>/<extra-tag>_infos_{train,val}.pkl (v1.0-test: _infos_test.pkl) in the
format of docs/data_format.md. The CAN bus is read from <can-bus-root>/can_bus (default:
the root path); without it the CAN part of can_bus is zero.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repo root


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Build info files from a dataset root')
    parser.add_argument('dataset', choices=['nuscenes'], help='dataset type')
    parser.add_argument('--root-path', required=True, help='dataset root')
    parser.add_argument('--version', default='v1.0-trainval',
                        choices=['v1.0-mini', 'v1.0-trainval', 'v1.0-test'])
    parser.add_argument('--out-dir', required=True, help='where the info files go')
    parser.add_argument('--extra-tag', default='nuscenes', help='info file name prefix')
    parser.add_argument('--can-bus-root', default=None,
                        help='directory containing can_bus/ (default: --root-path)')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from tools.dataset_converters.nuscenes_converter import create_nuscenes_infos
    create_nuscenes_infos(args.root_path, args.out_dir, version=args.version,
                          extra_tag=args.extra_tag, can_bus_root=args.can_bus_root)


if __name__ == '__main__':
    main()
