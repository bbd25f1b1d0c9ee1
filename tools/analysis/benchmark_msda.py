"""Benchmark our multi-scale deformable attention against mmcv's reference.

Compares, per shape, forward (under ``torch.no_grad``) and forward + backward
(gradients of value, locations and weights):

- CPU: ``mmcv.ops.multi_scale_deformable_attn_pytorch`` (grid_sample reference)
  vs ours (``projects.deformable_detr.ops.multi_scale_deformable_attn``: the compiled CPU
  kernel) and our kernel-free PyTorch op (its fallback, ``BEVFORMER_MSDA_CPU=pytorch``).
- ``--device cuda`` (when available): the same reference on CUDA, ours (which
  dispatches to mmcv's CUDA kernel) and our PyTorch op forced onto CUDA.

Time: median wall-clock of ``--reps`` runs after ``--warmup`` runs.

Peak memory: every (shape, implementation, mode) runs in a fresh subprocess. On
CPU, after the inputs are built and the libraries warmed up on a tiny problem,
the kernel's peak-RSS counter is reset (``/proc/self/clear_refs`` <- 5) and the
peak is read from ``VmHWM`` after one run: "peak MB" is that peak minus the RSS
before the run, i.e. the extra resident memory the call needed (temporaries,
saved tensors, gradients, outputs). Allocator caching can hide reuse of pages
freed before the run, so the numbers are a lower bound, equally for both
implementations. On CUDA it is ``torch.cuda.max_memory_allocated`` minus the
memory allocated before the run.

Threads: ``--threads`` sets torch's intra-op threads in every worker. On a CPU
shared with other busy processes, multi-threaded runs of our op are dominated by
OpenMP barrier waits (see the op's module docstring); compare at ``--threads 1``
there and report the load average printed in the header.

Usage:
    .venv/bin/python tools/analysis/benchmark_msda.py
    .venv/bin/python tools/analysis/benchmark_msda.py --cases tsa sca_tiny --reps 5 --threads 1
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# name: (bs, num_query (None = all value positions), [(H, W) per level], num_points, description)
CASES = {
    'tsa': (2, 2500, [(50, 50)], 4, 'BEVFormer-tiny temporal self-attn'),
    'sca_tiny': (6, 1200, [(15, 25)], 8, 'BEVFormer-tiny spatial cross-attn'),
    'sca_small': (6, 8000, [(58, 100), (29, 50), (15, 25)], 8,
                  'BEVFormer-small spatial cross-attn'),
    'ddetr_enc': (1, None, [(40, 60), (20, 30), (10, 15), (5, 8)], 4,
                  'Deformable-DETR encoder'),
}
NUM_HEADS, HEAD_DIMS = 8, 32
MODES = ('forward', 'forward+backward')


def make_inputs(case: str, device: str, seed: int = 0):
    """Random inputs of a case; ~5% of locations fall outside [0, 1]."""
    import torch
    bs, num_query, shapes, num_points, _ = CASES[case]
    g = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.long)
    sizes = spatial_shapes[:, 0] * spatial_shapes[:, 1]
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    num_value = int(sizes.sum())
    num_query = num_value if num_query is None else num_query
    value = torch.randn(bs, num_value, NUM_HEADS, HEAD_DIMS, generator=g)
    loc = torch.rand(bs, num_query, NUM_HEADS, len(shapes), num_points, 2, generator=g) * 1.1 - 0.05
    weights = torch.rand(bs, num_query, NUM_HEADS, len(shapes), num_points, generator=g)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    return [t.to(device) for t in (value, spatial_shapes, starts, loc, weights)]


def implementations(device: str) -> Dict[str, Callable]:
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

    from projects.deformable_detr.ops import multi_scale_deformable_attn
    from projects.deformable_detr.ops.multi_scale_deform_attn import _MSDeformAttnPyTorch
    impls = {'mmcv_ref': lambda v, s, i, l, w: multi_scale_deformable_attn_pytorch(v, s, l, w),
             'ours': multi_scale_deformable_attn}
    if device == 'cpu':  # the kernel-free op that ``ours`` falls back to without a compiler
        impls['ours_pytorch_op'] = _MSDeformAttnPyTorch.apply
    if device == 'cuda':
        impls['ours_pytorch_on_cuda'] = _MSDeformAttnPyTorch.apply
    return impls


def _read_status_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not found in /proc/self/status')


def worker(case: str, impl: str, mode: str, device: str, reps: int, warmup: int,
           threads: int) -> dict:
    """Runs in a fresh process: one peak-memory run, then the timed runs."""
    import torch
    if threads > 0:
        torch.set_num_threads(threads)
    fn = implementations(device)[impl]
    backward = mode == 'forward+backward'
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)

    def run(inputs, grad_out=None):
        value, shapes, starts, loc, weights = inputs
        if backward:
            value, loc, weights = (t.detach().requires_grad_() for t in (value, loc, weights))
            out = fn(value, shapes, starts, loc, weights)
            out.backward(grad_out)
            return value.grad, loc.grad, weights.grad
        with torch.no_grad():
            return fn(value, shapes, starts, loc, weights)

    # warm up the libraries (thread pools, MKL, kernels) on a tiny problem
    tiny = make_inputs('sca_tiny', device)
    tiny = [tiny[0][:1, :, :, :], tiny[1], tiny[2], tiny[3][:1, :16], tiny[4][:1, :16]]
    run(tiny, torch.ones(1, 16, NUM_HEADS * HEAD_DIMS, device=device))
    del tiny

    inputs = make_inputs(case, device)
    bs, num_query = inputs[3].shape[:2]
    grad_out = torch.randn(bs, num_query, NUM_HEADS * HEAD_DIMS, device=device)
    sync()
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        result = run(inputs, grad_out)
        sync()
        peak_mb = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        rss_before = _read_status_kb('VmRSS')
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current RSS
        result = run(inputs, grad_out)
        peak_mb = (_read_status_kb('VmHWM') - rss_before) / 1024
    del result

    times = []
    for i in range(warmup + reps):
        sync()
        t0 = time.perf_counter()
        result = run(inputs, grad_out)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
        del result
    return dict(ms=1e3 * statistics.median(times), peak_mb=peak_mb,
                threads=torch.get_num_threads())


def conditions(device: str, threads: int) -> str:
    import torch
    load = os.getloadavg() if hasattr(os, 'getloadavg') else ('?',) * 3
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if 'model name' in line)
    except (OSError, StopIteration):
        pass
    text = (f'torch {torch.__version__}, device {device}, CPU {cpu}, {os.cpu_count()} cores, '
            f'torch threads {threads if threads > 0 else torch.get_num_threads()}, '
            f'load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}')
    if device == 'cuda':
        text += f', GPU {torch.cuda.get_device_name()}'
    return text


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cases', nargs='+', default=list(CASES), choices=list(CASES))
    parser.add_argument('--modes', nargs='+', default=list(MODES), choices=list(MODES))
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--reps', type=int, default=3, help='timed runs (median reported)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs before timing')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch intra-op threads (0: torch default)')
    parser.add_argument('--worker', nargs=3, metavar=('CASE', 'IMPL', 'MODE'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(*args.worker, args.device, args.reps, args.warmup, args.threads)))
        return
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            parser.error('--device cuda: CUDA is not available on this machine')

    impl_names = list(implementations(args.device))
    print(f'Conditions: {conditions(args.device, args.threads)}; '
          f'{args.reps} timed reps (median) after {args.warmup} warm-up; '
          f'heads x dims {NUM_HEADS} x {HEAD_DIMS}.\n')
    header = ['case', 'bs', 'queries', 'levels (HxW)', 'points', 'mode']
    for name in impl_names:
        header += [f'{name} ms', f'{name} peak MB']
    header += ['speed-up ours', 'peak mem ours / ref']
    rows = []
    for case in args.cases:
        bs, num_query, shapes, num_points, _ = CASES[case]
        num_query = num_query or sum(h * w for h, w in shapes)
        for mode in args.modes:
            res = {}
            for name in impl_names:
                cmd = [sys.executable, os.path.abspath(__file__), '--worker', case, name, mode,
                       '--device', args.device, '--reps', str(args.reps), '--warmup',
                       str(args.warmup), '--threads', str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
                if out.returncode != 0:
                    raise RuntimeError(f'{case}/{name}/{mode} failed:\n{out.stderr[-3000:]}')
                res[name] = json.loads(out.stdout.strip().splitlines()[-1])
                print(f'  {case:10s} {mode:17s} {name:22s} {res[name]["ms"]:9.1f} ms '
                      f'{res[name]["peak_mb"]:9.1f} MB', file=sys.stderr, flush=True)
            ref, ours = res['mmcv_ref'], res['ours']
            row = [case, str(bs), str(num_query), ', '.join(f'{h}x{w}' for h, w in shapes),
                   str(num_points), mode]
            for name in impl_names:
                row += [f'{res[name]["ms"]:.1f}', f'{res[name]["peak_mb"]:.1f}']
            row += [f'{ref["ms"] / ours["ms"]:.2f}x',
                    f'{ours["peak_mb"] / max(ref["peak_mb"], 1e-9):.2f}']
            rows.append(row)
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '|'.join('---' for _ in header) + '|')
    for row in rows:
        print('| ' + ' | '.join(row) + ' |')


if __name__ == '__main__':
    main()
