"""Multi-camera 3D detection on your own frames (six images + the rig's calibration).

    .venv/bin/python demo/multiview_demo.py FRAME.json [FRAME2.json ...] CONFIG [CHECKPOINT] \
        [--out-dir demo_out] [--score-thr 0.3] [--device cpu]

Each FRAME.json describes one frame (schema: projects/bevformer/apis/inference.py; the real
nuScenes key frame is demo/data/nuscenes_keyframe.json). Frames of one scene, given in order,
share the temporal history. Prints the boxes above the threshold and writes a picture per
frame (six cameras + BEV) and predictions.json to --out-dir.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from projects.bevformer.apis import BEVFormerInferencer  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('paths', nargs='+', help='FRAME.json ... CONFIG [CHECKPOINT]')
    parser.add_argument('--out-dir', default='demo_out')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    paths = list(args.paths)
    checkpoint = paths.pop() if paths[-1].endswith('.pth') else None
    if len(paths) < 2 or not paths[-1].endswith('.py'):
        parser.error('give one or more FRAME.json, then CONFIG.py, then optionally CHECKPOINT.pth')
    config, frames = paths[-1], paths[:-1]
    inferencer = BEVFormerInferencer(config, checkpoint, device=args.device)
    os.makedirs(args.out_dir, exist_ok=True)
    out = inferencer(frames, out_dir=args.out_dir, score_thr=args.score_thr)
    summary = []
    for frame, pred, picture in zip(frames, out['predictions'], out['visualization']):
        keep = pred['scores_3d'] >= args.score_thr
        print(f'{frame}: {int(keep.sum())} boxes with score >= {args.score_thr} -> {picture}')
        for box, score, name in zip(pred['bboxes_3d'][keep], pred['scores_3d'][keep],
                                    [n for n, k in zip(pred['label_names'], keep) if k]):
            print(f'  {name:20s} {score:.3f}  x={box[0]:7.2f} y={box[1]:7.2f} z={box[2]:6.2f} '
                  f'l={box[3]:5.2f} w={box[4]:5.2f} h={box[5]:5.2f} yaw={box[6]:6.3f}')
        summary.append(dict(frame=frame, picture=picture,
                            boxes=[dict(label=n, score=float(s), box=[float(v) for v in b])
                                   for b, s, n, k in zip(pred['bboxes_3d'], pred['scores_3d'],
                                                         pred['label_names'], keep) if k]))
    with open(osp.join(args.out_dir, 'predictions.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
