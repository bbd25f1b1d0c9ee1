"""Export one frame of BEVFormer inference to ONNX and check it with onnxruntime.

    .venv/bin/python tools/deployment/export_onnx.py CONFIG [CHECKPOINT] --out model.onnx \
        [--shape H W] [--check] [--benchmark N]

The graph runs one frame (video mode): inputs ``img`` (1, N_cam, 3, H_pad, W_pad) normalised
and padded as ``BEVDataPreprocessor`` makes it, ``lidar2img`` (1, N_cam, 4, 4), ``can_bus``
(1, 18) as ``BEVFormerEncoder.make_can_bus`` makes it (deltas from the previous frame),
``prev_bev`` (1, bev_h * bev_w, C) (the previous frame's ``bev``; anything when there is none),
``prev2cur`` (1, 4, 4) (previous LiDAR -> current LiDAR) and ``prev_valid`` (1,) bool; outputs
``bboxes_3d`` (K, 9) (LiDAR frame, z at the bottom), ``scores_3d`` (K,), ``labels_3d`` (K,),
``in_range`` (K,) bool (the coder's post_center_range) and ``bev`` to feed the next frame.
The image size (``--shape``, default the config's test size) is fixed in the graph.

Multi-scale deformable attention is exported as mmcv's grid_sample formulation (standard
ONNX ops, opset 17), and spatial cross-attention gives every BEV query a slot in every camera
(misses masked out) so the graph does not depend on the calibration it was traced with.
Legacy mode (the original BEVFormer's arithmetic) is not exportable: its rotation angle is a
Python number.

``--check`` runs two consecutive frames (the second with the first's BEV and 1.5 m / 2 deg of
ego motion) through PyTorch and onnxruntime and prints the largest differences;
``--benchmark N`` adds both latencies (median of N runs).
"""
import argparse
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

INPUT_NAMES = ['img', 'lidar2img', 'can_bus', 'prev_bev', 'prev2cur', 'prev_valid']
OUTPUT_NAMES = ['bboxes_3d', 'scores_3d', 'labels_3d', 'in_range', 'bev']


class OneFrameBEVFormer(nn.Module):
    """The inference of one frame as a traceable module (see the module docstring).

    Args:
        model (BEVFormer): a detector in eval mode with a ``det`` head.
        img_shape (tuple): valid (H, W) of the images before padding.
    """

    def __init__(self, model: nn.Module, img_shape: Tuple[int, int]) -> None:
        super().__init__()
        if model.bev_encoder.legacy is not None:
            raise ValueError('export_onnx: legacy mode (the original arithmetic) cannot be '
                             'exported; use the default (exact) mode')
        self.model = model
        self.img_shape = tuple(int(v) for v in img_shape)
        self.head = model.heads['det']

    def forward(self, img: Tensor, lidar2img: Tensor, can_bus: Tensor, prev_bev: Tensor,
                prev2cur: Tensor, prev_valid: Tensor) -> Tuple[Tensor, ...]:
        feats = self.model.extract_img_feat(img)
        bev = self.model.bev_encoder(
            feats, lidar2img=lidar2img, img_shape=self.img_shape,
            pad_shape=tuple(img.shape[-2:]), can_bus=can_bus, prev_bev=prev_bev,
            prev2cur=prev2cur, prev_valid=prev_valid)
        cls, bbox = self.head(bev)
        boxes, scores, labels, in_range = decode_fixed(self.head.bbox_coder, cls[-1, 0],
                                                       bbox[-1, 0])
        return boxes, scores, labels, in_range, bev


def decode_fixed(coder, cls_scores: Tensor, bbox_preds: Tensor) -> Tuple[Tensor, ...]:
    """``NMSFreeCoder.decode`` with a fixed output size: the top-k and an ``in_range`` mask
    instead of dropping boxes (ONNX graphs prefer static shapes)."""
    from projects.bevformer.geometry.box_coding import CODE_CENTER_DIMS, decode_bboxes_3d
    k = min(coder.max_num, cls_scores.numel())
    scores, flat = cls_scores.sigmoid().flatten().topk(k)
    labels = flat % coder.num_classes
    codes = bbox_preds[torch.div(flat, coder.num_classes, rounding_mode='floor')]
    in_range = torch.ones_like(scores, dtype=torch.bool)
    if coder.post_center_range is not None:
        rng = codes.new_tensor(coder.post_center_range)
        centres = codes[:, list(CODE_CENTER_DIMS)]
        in_range = ((centres >= rng[:3]) & (centres <= rng[3:])).all(dim=1)
    if coder.score_threshold is not None:
        in_range = in_range & (scores > coder.score_threshold)
    return decode_bboxes_3d(codes), scores, labels, in_range


def example_frames(model, img_hw: Tuple[int, int], pad_hw: Tuple[int, int]) -> List[dict]:
    """Two consecutive frames of real geometry (the nuScenes rig) with random images."""
    from tools.analysis.benchmark_model import make_inputs
    inputs = make_inputs(model, 1, 2, list(img_hw), 'cpu', with_prev=True)
    assert tuple(inputs['img'].shape[-2:]) == tuple(pad_hw), (inputs['img'].shape, pad_hw)
    frames = []
    enc = model.bev_encoder
    from projects.bevformer.geometry.ego_motion import relative_pose
    for t in range(2):
        valid = torch.tensor([t > 0])
        prev = inputs['can_bus'][:, t - 1] if t else torch.zeros_like(inputs['can_bus'][:, 0])
        frames.append(dict(
            img=inputs['img'][:, t].float(), lidar2img=inputs['lidar2img'][:, t].float(),
            can_bus=enc.make_can_bus(inputs['can_bus'][:, t], prev, valid).float(),
            prev2cur=(relative_pose(inputs['lidar2global'][:, t - 1], inputs['lidar2global'][:, t])
                      if t else torch.eye(4, dtype=torch.float64)[None]).float(),
            prev_valid=valid))
    return frames


def run_torch(wrapper: OneFrameBEVFormer, frames: List[dict],
              prev_bev: Tensor) -> List[Tuple[Tensor, ...]]:
    outs = []
    with torch.no_grad():
        for frame in frames:
            out = wrapper(frame['img'], frame['lidar2img'], frame['can_bus'], prev_bev,
                          frame['prev2cur'], frame['prev_valid'])
            outs.append(out)
            prev_bev = out[-1]
    return outs


def run_onnx(session, frames: List[dict], prev_bev: np.ndarray) -> List[List[np.ndarray]]:
    outs = []
    for frame in frames:
        feed = {k: frame[k].numpy() for k in ('img', 'lidar2img', 'can_bus', 'prev2cur',
                                               'prev_valid')}
        feed['prev_bev'] = prev_bev
        out = session.run(OUTPUT_NAMES, feed)
        outs.append(out)
        prev_bev = out[-1]
    return outs


def compare(torch_outs, onnx_outs) -> Dict[str, float]:
    """Largest differences per output and frame (scores / boxes matched by rank)."""
    errs = {}
    for t, (a, b) in enumerate(zip(torch_outs, onnx_outs)):
        for name, x, y in zip(OUTPUT_NAMES, a, b):
            x = x.numpy()
            if x.dtype == bool or np.issubdtype(x.dtype, np.integer):
                errs[f'frame{t}.{name} mismatches'] = float((x != y).mean())
            else:
                errs[f'frame{t}.{name} max abs'] = float(np.abs(x - y).max())
    return errs


def export(model, img_hw: Tuple[int, int], out: str) -> OneFrameBEVFormer:
    """Trace one frame (with a previous BEV) and write ``out``."""
    pad = model.data_preprocessor.pad_size_divisor
    pad_hw = (-(-img_hw[0] // pad) * pad, -(-img_hw[1] // pad) * pad)
    wrapper = OneFrameBEVFormer(model, img_hw).eval()
    frames = example_frames(model, img_hw, pad_hw)
    enc = model.bev_encoder
    prev_bev = torch.zeros(1, enc.bev_h * enc.bev_w, enc.embed_dims)
    f = frames[1]
    with torch.no_grad():
        torch.onnx.export(wrapper, (f['img'], f['lidar2img'], f['can_bus'], prev_bev,
                                    f['prev2cur'], f['prev_valid']),
                          out, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                          opset_version=17, dynamo=False)
    return wrapper


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--out', required=True)
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='image size before padding (default: the config\'s test size)')
    parser.add_argument('--check', action='store_true', help='compare with onnxruntime')
    parser.add_argument('--benchmark', type=int, default=0, metavar='N')
    args = parser.parse_args(argv)

    import warnings

    from mmengine.config import Config

    from projects.bevformer.apis import init_model
    from tools.analysis.benchmark_model import config_img_size
    cfg = Config.fromfile(args.config)
    img_hw = tuple(args.shape) if args.shape else tuple(config_img_size(cfg))
    if args.checkpoint is None:  # random weights (a shape / numerics check): no download
        for key in ('img_backbone', 'img_neck'):
            if key in cfg.model:
                cfg.model[key]['init_cfg'] = None
    model = init_model(cfg, args.checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings about constants we mean
        wrapper = export(model, img_hw, args.out)
    print(f'wrote {args.out} ({osp.getsize(args.out) / 2**20:.1f} MB) for images {img_hw}')
    if not (args.check or args.benchmark):
        return 0
    try:
        import onnxruntime as ort
    except ImportError:
        print('onnxruntime is not installed: pip install onnxruntime (see requirements.txt)')
        return 1
    session = ort.InferenceSession(args.out, providers=['CPUExecutionProvider'])
    pad_hw = tuple(wrapper_pad(model, img_hw))
    frames = example_frames(model, img_hw, pad_hw)
    enc = model.bev_encoder
    zeros = torch.zeros(1, enc.bev_h * enc.bev_w, enc.embed_dims)
    torch_outs = run_torch(wrapper, frames, zeros)
    onnx_outs = run_onnx(session, frames, zeros.numpy())
    for key, value in compare(torch_outs, onnx_outs).items():
        print(f'  {key}: {value:.3g}')
    if args.benchmark:
        timings = {}
        for name, fn in (('pytorch', lambda: run_torch(wrapper, frames[1:], torch_outs[0][-1])),
                         ('onnxruntime', lambda: run_onnx(session, frames[1:],
                                                          onnx_outs[0][-1]))):
            fn()
            runs = []
            for _ in range(args.benchmark):
                t0 = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - t0)
            timings[name] = statistics.median(runs)
        print('  latency per frame (median of %d): ' % args.benchmark +
              ', '.join(f'{k} {1e3 * v:.1f} ms' for k, v in timings.items()))
    return 0


def wrapper_pad(model, img_hw: Tuple[int, int]) -> Tuple[int, int]:
    pad = model.data_preprocessor.pad_size_divisor
    return (-(-img_hw[0] // pad) * pad, -(-img_hw[1] // pad) * pad)


if __name__ == '__main__':
    sys.exit(main())
