"""Latency, throughput, memory and a per-stage split of a whole BEVFormer model.

    .venv/bin/python tools/analysis/benchmark_model.py CONFIG [--checkpoint CKPT] \
        [--device cpu|cuda] [--batch-size 1] [--mode inference|train] [--num-iters 10] \
        [--warmup 3] [--amp] [--threads N] [--img-size H W] [--no-prev] [--json OUT] \
        [--fuse-conv-bn] [--channels-last]

Inputs are random but real-shaped: six cameras of the config's test image size (or
``--img-size``, before padding) seen through the real nuScenes rig (demo/data/
nuscenes_keyframe.json, intrinsics scaled to the image), so spatial cross-attention gathers
as many queries per camera as on real data; in inference the frame has a previous BEV (video
mode, the ego moved 1.5 m and turned 2 deg) unless ``--no-prev``; in training the config's
queue length. No dataset is read.

Reported: the median and spread (min-max) of the per-iteration time after ``--warmup``
iterations, samples/s, peak memory (CPU: the process's peak resident set minus the resident
set before the timed iterations, from /proc; CUDA: max allocated / reserved), and in
inference a split into backbone+neck, BEV encoder, head (decoder + branches) and
post-processing. Run it on an idle machine and report the load average it prints.
``--fuse-conv-bn`` / ``--channels-last`` (inference only) apply the optional backbone
speed-ups of ``projects.bevformer.apis.optimize_for_cpu_inference``; with ``--amp`` on a
bf16-capable CPU, ``--channels-last`` is what lets the convolutions use bf16 kernels.
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

RIG = osp.join(REPO, 'demo', 'data', 'nuscenes_keyframe.json')
RIG_HW = (900, 1600)


def _rss_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:  # not Linux / not permitted: the peak then covers the whole process
        pass


def config_img_size(cfg) -> List[int]:
    """(H, W) the config's test pipeline produces from 1600x900 nuScenes images."""
    scale = 1.0
    for t in cfg.test_dataloader.dataset.pipeline:
        if t['type'] == 'MultiViewResize' and t.get('scale_factor') is not None:
            scale = float(t['scale_factor'])
    return [int(round(RIG_HW[0] * scale)), int(round(RIG_HW[1] * scale))]


def make_inputs(model, batch_size: int, num_frames: int, img_hw: List[int],
                device: str, with_prev: bool) -> dict:
    """Preprocessed (B, T, ...) model inputs with the real rig and random images."""
    from projects.bevformer.apis import frame_to_results, load_frame
    from projects.bevformer.geometry.camera import scale_lidar2img
    results = frame_to_results(load_frame(RIG))
    scale = (img_hw[1] / RIG_HW[1], img_hw[0] / RIG_HW[0])
    lidar2img = np.stack([scale_lidar2img(m, scale) for m in results['lidar2img']])
    num_cams = len(lidar2img)
    g = torch.Generator().manual_seed(0)
    pre = model.data_preprocessor
    imgs = [torch.rand(num_frames, num_cams, 3, *img_hw, generator=g) * 255
            for _ in range(batch_size)]
    geo = dict(lidar2img=[], lidar2global=[], can_bus=[], img_shape=[], prev_exists=[])
    for _ in range(batch_size):
        poses, can = [], []
        for t in range(num_frames):
            pose = results['lidar2global'].copy()
            yaw = np.radians(2.0) * t
            rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
            pose[:2, :2] = rot @ pose[:2, :2]
            pose[0, 3] += 1.5 * t
            poses.append(pose)
            cb = results['can_bus'].copy()
            cb[0] += 1.5 * t
            cb[16] = (cb[16] + yaw) % (2 * np.pi)
            cb[17] = np.degrees(cb[16])
            can.append(cb)
        geo['lidar2img'].append(np.repeat(lidar2img[None], num_frames, 0))
        geo['lidar2global'].append(np.stack(poses))
        geo['can_bus'].append(np.stack(can))
        geo['img_shape'].append(np.array([img_hw] * num_frames))
        geo['prev_exists'].append(np.array([False] + [with_prev] * (num_frames - 1)))
    data = pre(dict(inputs=dict(img=imgs, **{k: [torch.as_tensor(v) for v in vs]
                                              for k, vs in geo.items()})), False)
    return {k: v.to(device) for k, v in data['inputs'].items()}


def make_samples(model, batch_size: int, with_gt: bool):
    from mmengine.structures import InstanceData

    from projects.bevformer.structures import Det3DDataSample
    samples = []
    g = torch.Generator().manual_seed(1)
    for b in range(batch_size):
        ds = Det3DDataSample()
        ds.set_metainfo(dict(token=f'bench{b}', scene_token='bench', frame_idx=1,
                             lidar2global=np.eye(4)))
        if with_gt:
            n = 30
            boxes = torch.zeros(n, 9)
            boxes[:, :2] = torch.rand(n, 2, generator=g) * 80 - 40
            boxes[:, 2] = -1.8
            boxes[:, 3:6] = torch.tensor([4.5, 1.9, 1.6])
            boxes[:, 6] = torch.rand(n, generator=g) * 6.28 - 3.14
            ds.gt_instances_3d = InstanceData(bboxes_3d=boxes,
                                              labels_3d=torch.randint(0, 10, (n, ), generator=g))
        samples.append(ds)
    return samples


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_inference(model, inputs: dict, samples, device: str, with_prev: bool,
                   amp: bool) -> Dict[str, float]:
    """One frame through the stages, each timed; returns seconds per stage."""
    from projects.bevformer.models.detectors.bevformer import BEVFormer
    assert isinstance(model, BEVFormer)
    times = {}
    ctx = (torch.autocast(device_type=device.split(':')[0],
                          dtype=torch.float16 if device.startswith('cuda') else torch.bfloat16)
           if amp else torch.autocast(device_type='cpu', enabled=False))
    imgs = inputs['img']
    geo = model._geometry(inputs, imgs)
    frame = {k: v[:, -1] for k, v in geo.items()}
    pad = tuple(imgs.shape[-2:])
    head = model.heads['det']
    with torch.no_grad(), ctx:
        prev_bev, prev_frame = None, None
        if with_prev:  # the previous frame's BEV, as video mode carries it (not timed)
            prev_frame = {k: v[:, 0] for k, v in geo.items()}
            prev_bev = torch.randn(imgs.shape[0], model.bev_encoder.bev_h *
                                   model.bev_encoder.bev_w, model.bev_encoder.embed_dims,
                                   device=imgs.device)
        _sync(device)
        t0 = time.perf_counter()
        feats = model.extract_img_feat(imgs[:, -1])
        _sync(device)
        t1 = time.perf_counter()
        bev = model._encode(feats, frame, pad, prev_bev, prev_frame, frame['prev_exists'])
        _sync(device)
        t2 = time.perf_counter()
        cls, bbox = head(bev)
        _sync(device)
        t3 = time.perf_counter()
        head.predict_by_feat(cls, bbox)
        _sync(device)
        t4 = time.perf_counter()
    times.update({'backbone+neck': t1 - t0, 'bev encoder': t2 - t1, 'head': t3 - t2,
                  'post-processing': t4 - t3})
    times['total'] = t4 - t0
    return times


def time_train(model, inputs: dict, samples, optimizer, device: str,
               amp: bool) -> Dict[str, float]:
    ctx = (torch.autocast(device_type=device.split(':')[0],
                          dtype=torch.float16 if device.startswith('cuda') else torch.bfloat16)
           if amp else torch.autocast(device_type='cpu', enabled=False))
    _sync(device)
    t0 = time.perf_counter()
    with ctx:
        losses = model.loss(inputs, samples)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    _sync(device)
    return {'total': time.perf_counter() - t0}


def run(args) -> dict:
    from mmengine.config import Config

    from projects.bevformer.apis import init_model
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    img_hw = list(args.img_size) if args.img_size else config_img_size(cfg)
    if args.checkpoint is None:  # random weights: no pretrained download (none is possible)
        for key in ('img_backbone', 'img_neck'):
            if key in cfg.model:
                cfg.model[key]['init_cfg'] = None
    model = init_model(cfg, args.checkpoint, device=args.device)
    model.video_test_mode = False
    train = args.mode == 'train'
    if not train:
        from projects.bevformer.apis import optimize_for_cpu_inference
        optimize_for_cpu_inference(model, args.fuse_conv_bn, args.channels_last,
                                   args.compile_bev_encoder)
    num_frames = (cfg.train_dataloader.dataset.get('queue_length', 1) if train
                  else (2 if not args.no_prev else 1))
    inputs = make_inputs(model, args.batch_size, num_frames, img_hw, args.device,
                         not args.no_prev)
    samples = make_samples(model, args.batch_size, with_gt=train)
    optimizer = None
    if train:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        if train:
            return time_train(model, inputs, samples, optimizer, args.device, args.amp)
        return time_inference(model, inputs, samples, args.device, not args.no_prev, args.amp)

    for _ in range(args.warmup):
        step()
    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
    _reset_peak_rss()
    rss_before = _rss_kb('VmRSS')
    records = [step() for _ in range(args.num_iters)]
    stages = {k: [r[k] for r in records] for k in records[0]}
    summary = {k: dict(median_ms=1e3 * statistics.median(v), min_ms=1e3 * min(v),
                       max_ms=1e3 * max(v)) for k, v in stages.items()}
    out = dict(config=args.config, mode=args.mode, device=args.device,
               batch_size=args.batch_size, img_hw=img_hw, frames=num_frames if train else 1,
               with_prev=not args.no_prev, amp=args.amp, fuse_conv_bn=args.fuse_conv_bn,
               channels_last=args.channels_last, compile_bev_encoder=args.compile_bev_encoder,
               threads=torch.get_num_threads(),
               load_average=list(os.getloadavg()), stages=summary,
               samples_per_s=args.batch_size / statistics.median(stages['total']))
    if args.device.startswith('cuda'):
        out['peak_mb'] = dict(allocated=(torch.cuda.max_memory_allocated() - base_alloc) / 2**20,
                              reserved=torch.cuda.max_memory_reserved() / 2**20)
    else:
        out['peak_mb'] = dict(rss_increase=(_rss_kb('VmHWM') - rss_before) / 1024,
                              rss_peak=_rss_kb('VmHWM') / 1024)
    return out


def format_table(out: dict) -> str:
    lines = [f'{out["config"]}: {out["mode"]} on {out["device"]}, batch {out["batch_size"]}, '
             f'{out["frames"]} frame(s) of 6 x {out["img_hw"][0]}x{out["img_hw"][1]}, '
             f'prev BEV {out["with_prev"]}, amp {out["amp"]}, fuse-conv-bn '
             f'{out["fuse_conv_bn"]}, channels-last {out["channels_last"]}, '
             f'compiled BEV encoder {out["compile_bev_encoder"]}, '
             f'{out["threads"]} threads, '
             f'load average {out["load_average"][0]:.2f}',
             '| stage | median ms | min ms | max ms |', '|---|---|---|---|']
    for stage, s in out['stages'].items():
        lines.append(f'| {stage} | {s["median_ms"]:.1f} | {s["min_ms"]:.1f} | {s["max_ms"]:.1f} |')
    lines.append(f'samples/s {out["samples_per_s"]:.3f}; peak memory (MB) ' +
                 ', '.join(f'{k} {v:.0f}' for k, v in out['peak_mb'].items()))
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--mode', choices=('inference', 'train'), default='inference')
    parser.add_argument('--num-iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--amp', action='store_true')
    parser.add_argument('--threads', type=int)
    parser.add_argument('--img-size', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--no-prev', action='store_true', help='inference without a previous BEV')
    parser.add_argument('--json', help='also write the figures to this JSON file')
    parser.add_argument('--fuse-conv-bn', action='store_true',
                        help='inference: fold BatchNorm into the backbone / neck convolutions')
    parser.add_argument('--channels-last', action='store_true',
                        help='inference: backbone / neck in NHWC memory format')
    parser.add_argument('--compile-bev-encoder', action='store_true',
                        help='inference: torch.compile the BEV encoder layers (the warm-up '
                        'pays the compilation: give it --warmup 2 or more)')
    args = parser.parse_args(argv)
    if args.mode == 'train' and (args.fuse_conv_bn or args.channels_last
                                 or args.compile_bev_encoder):
        parser.error('--fuse-conv-bn / --channels-last / --compile-bev-encoder are '
                     'inference-only')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device here')
    out = run(args)
    print(format_table(out))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
