"""Draw GT and / or predicted 3D boxes on the six cameras and in BEV, one PNG per sample.

    python tools/analysis/visualize.py --info data/nuscenes/nuscenes_infos_val.pkl \
        --data-root data/nuscenes --out-dir work_dirs/vis [--pred results.pkl] \
        [--num 10] [--score-thr 0.3|auto] [--topk 30] [--no-gt] [--token TOKEN ...]

``--pred`` is the pickle written by ``tools/test.py CONFIG CKPT --out results.pkl`` (format in
``projects/bevformer/visualization/predictions.py``). From Python:
``projects.bevformer.visualization.visualize_infos(info_file, data_root, out_dir, ...)`` or
``main([...])`` here.

``--score-thr auto`` picks the score of maximum F1 over all the info file's samples (same class,
centre within 2 m, greedy by score as the nuScenes devkit matches) and prints it with its
precision and recall; when no prediction matches any GT box it says so and draws only the
``--topk`` best guesses (titled as such), none without ``--topk``.

Both pickles are read with the restricted unpickler (``projects/common/safe_pickle.py``): a
file that pickles anything but data is refused with its name, and nothing in it runs.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import projects.common  # noqa: E402,F401  (safe .pkl loading)
from projects.bevformer.visualization import visualize_infos  # noqa: E402


def score_threshold(text: str):
    """``--score-thr``: a number or ``auto``."""
    if text == 'auto':
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or 'auto', got {text!r}") from None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--info', required=True, help='info pickle (tools/create_data.py)')
    parser.add_argument('--data-root', required=True, help='dataroot of the image paths')
    parser.add_argument('--out-dir', required=True, help='folder for the PNGs')
    parser.add_argument('--pred', help='predictions pickle from tools/test.py --out')
    parser.add_argument('--num', type=int, default=None, help='at most this many samples')
    parser.add_argument('--score-thr', type=score_threshold, default=0.3,
                        help="prediction score cut, or 'auto': the score of maximum F1 "
                        'against the GT over all samples (needs --pred)')
    parser.add_argument('--topk', type=int, default=None,
                        help='at most this many best-scoring predictions per sample')
    parser.add_argument('--no-gt', action='store_true', help='do not draw the GT boxes')
    parser.add_argument('--token', nargs='+', help='only these sample tokens')
    parser.add_argument('--bev-range', type=float, default=51.2, help='BEV half-size (m)')
    parser.add_argument('--dpi', type=int, default=80)
    args = parser.parse_args(argv)
    if args.score_thr == 'auto' and not args.pred:
        parser.error('--score-thr auto needs --pred (the threshold comes from the predictions)')
    return args


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    paths = visualize_infos(args.info, args.data_root, args.out_dir, pred_file=args.pred,
                            num=args.num, score_thr=args.score_thr, topk=args.topk,
                            show_gt=not args.no_gt,
                            tokens=args.token, bev_range=args.bev_range, dpi=args.dpi)
    for path in paths:
        print(path)
    return paths


if __name__ == '__main__':
    main()
