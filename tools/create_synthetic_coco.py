"""Write the synthetic COCO-format shapes dataset.

Example:
    python tools/create_synthetic_coco.py --out-dir data/synthetic_coco \
        --num-train 400 --num-val 100 --seed 0
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repo root

from projects.deformable_detr.datasets.synthetic_coco import generate_synthetic_coco  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default='data/synthetic_coco', help='dataset root')
    parser.add_argument('--num-train', type=int, default=400, help='training images')
    parser.add_argument('--num-val', type=int, default=100, help='validation images')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--min-size', type=int, default=128, help='smallest image side')
    parser.add_argument('--max-size', type=int, default=256, help='largest image side')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    ann_files = generate_synthetic_coco(args.out_dir, num_train=args.num_train,
                                        num_val=args.num_val, seed=args.seed,
                                        size_range=(args.min_size, args.max_size))
    for split, path in ann_files.items():
        print(f'{split}: {path}')
    print(f'done in {time.perf_counter() - start:.1f}s')


if __name__ == '__main__':
    main()
