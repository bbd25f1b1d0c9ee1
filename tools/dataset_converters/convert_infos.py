"""Convert another project's nuScenes info file into ours (docs/data_format.md).

    python tools/dataset_converters/convert_infos.py SRC DST [--format auto|bevformer|mmdet3d-v2]
        [--data-root data/nuscenes] [--can-bus-root data]

- ``bevformer``: the original BEVFormer's ``nuscenes_infos_temporal_{train,val,test}.pkl``.
  ``--data-root`` (with its ``v1.0-*`` tables) adds scene names, image sizes, instance tokens and
  attributes, and checks the paths; ``--can-bus-root`` re-reads the CAN values as
  ``tools/create_data.py`` does (otherwise the file's are kept).
- ``mmdet3d-v2``: mmdet3d 1.x's ``nuscenes_infos_{train,val}.pkl``; needs ``--data-root`` (the
  format has no scene links and float32 matrices). can_bus comes from ``--can-bus-root``
  (default: the data root).

Boxes come out in our convention, labels in our class order; SRC is read with the restricted
unpickler. Details: ``tools/dataset_converters/foreign_infos.py``.
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='the other project\'s info pickle')
    parser.add_argument('dst', help='where to write ours')
    parser.add_argument('--format', default='auto', choices=['auto', 'bevformer', 'mmdet3d-v2'],
                        help='the format of SRC (default: from its layout)')
    parser.add_argument('--data-root', help='the nuScenes dataroot (with its v1.0-* tables)')
    parser.add_argument('--can-bus-root', help='directory containing can_bus/')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    from tools.dataset_converters.foreign_infos import convert_info_file
    out = convert_info_file(args.src, args.dst, fmt=args.format, data_root=args.data_root,
                            can_bus_root=args.can_bus_root)
    n_boxes = sum(len(i['instances']) for i in out['data_list'])
    scenes = len({i['scene_token'] for i in out['data_list']})
    print(f'{args.src} -> {args.dst}: {len(out["data_list"])} samples in {scenes} scenes, '
          f'{n_boxes} boxes ({out["metainfo"]["version"]})', flush=True)
    return out


if __name__ == '__main__':
    main()
