"""Write a synthetic nuScenes dataroot (real v1.0 layout, rendered from a simple 3D world).

Example (the CPU quickstart's dataroot, the defaults: v1.0-trainval layout, 50 scenes of 12 key
frames, 40 train / 10 val; then build the info files with tools/create_data.py):
    python tools/create_synthetic_nuscenes.py --root data/nuscenes_synthetic
    python tools/create_data.py nuscenes --root-path data/nuscenes_synthetic \
        --version v1.0-trainval --out-dir data/nuscenes_synthetic
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repo root

from projects.bevformer.synthetic import generate_synthetic_nuscenes  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', default='data/nuscenes_synthetic', help='dataroot to write')
    parser.add_argument('--version', default='v1.0-trainval',
                        choices=['v1.0-mini', 'v1.0-trainval', 'v1.0-test'],
                        help='release layout / scene names (mini: at most 10 scenes)')
    # 40 training scenes, not mini's 8: on 8 scenes the quickstart model memorises the training
    # set (train NDS 0.26, val 0.09 after 600 iterations; issue 13's note)
    parser.add_argument('--num-scenes', type=int, default=50, help='number of scenes')
    parser.add_argument('--num-val-scenes', type=int, default=None,
                        help='validation scenes (default: 2 of 10 for mini, 20%% for trainval)')
    parser.add_argument('--frames-per-scene', type=int, default=12, help='key frames (2 Hz)')
    parser.add_argument('--objects-per-frame', type=int, default=14,
                        help='minimum annotated objects per key frame')
    parser.add_argument('--image-scale', type=float, default=0.2,
                        help='image size relative to 1600x900')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--workers', type=int, default=None,
                        help='processes rendering scenes in parallel (default: one per core); '
                        'the dataroot does not depend on it')
    parser.add_argument('--quiet', action='store_true', help='no progress output')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    generate_synthetic_nuscenes(
        args.root, num_scenes=args.num_scenes, frames_per_scene=args.frames_per_scene,
        objects_per_frame=args.objects_per_frame, image_scale=args.image_scale,
        seed=args.seed, version=args.version, num_val_scenes=args.num_val_scenes,
        verbose=not args.quiet, workers=args.workers or os.cpu_count() or 1)


if __name__ == '__main__':
    main()
