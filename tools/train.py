"""Train a detector with an mmengine config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--partial-load]
                          [--cfg-options k=v ...] [--launcher none|pytorch|slurm]

Multi-GPU / multi-node: tools/dist_train.sh (torchrun), tools/slurm_train.sh.

Every run stops at the first non-finite loss or gradient (``NonFiniteCheckHook``), writes
each checkpoint before removing old ones, and ``--resume`` restores the RNG states
(``RNGStateHook``); ``load_from`` must fit the model unless ``--partial-load``
(``projects/common``).
"""
import argparse
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import projects.common  # noqa: E402,F401  (safe checkpoints, CPU DDP)
from projects.common import (StrictDictAction, add_reliability_hooks,  # noqa: E402
                             check_config_keys, check_resumable, check_same_model,
                             find_resume_checkpoint, init_dist_auto, read_checkpoint)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT; without a value, from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (fp16 on CUDA, bf16 on CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual / base batch size')
    parser.add_argument('--partial-load', action='store_true',
                        help='let load_from load only the weights that fit the model (e.g. a '
                        'pretrained backbone); without it a checkpoint that does not fit is '
                        'refused')
    parser.add_argument(
        '--cfg-options', nargs='+', action=StrictDictAction,
        help='override config settings, e.g. train_cfg.max_iters=10 model.backbone.depth=18')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def setup_amp(cfg: Config) -> None:
    """fp16 AmpOptimWrapper (dynamic loss scale) on CUDA, bf16 autocast on CPU."""
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') in ('AmpOptimWrapper', 'CPUAutocastOptimWrapper'):
        return
    if wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {wrapper.type!r}')
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        # mmengine's AmpOptimWrapper needs CUDA; on CPU autocast to bfloat16 instead.
        wrapper.type = 'CPUAutocastOptimWrapper'
        wrapper.setdefault('dtype', 'bfloat16')


def setup_resume(cfg: Config, resume: str) -> None:
    """Resolve ``--resume`` before the runner is built and check the checkpoint.

    The checkpoint must be one training wrote (iteration, optimizer, ...); its seed becomes
    ``randomness.seed`` so the data sampler, built before mmengine restores the seed, draws
    the same order as the interrupted run.
    """
    if resume == 'auto':
        path = find_resume_checkpoint(cfg.work_dir)
        if path is None:  # nothing to resume: mmengine starts from scratch with a warning
            cfg.resume = True
            cfg.load_from = None
            return
    else:
        if not osp.isfile(resume):
            raise FileNotFoundError(f'--resume checkpoint {resume} does not exist')
        path = resume
    cfg.resume = True
    cfg.load_from = path
    if '://' in path:
        return
    checkpoint = read_checkpoint(path)
    check_resumable(checkpoint, path)
    check_same_model(checkpoint, cfg, path)  # before the runner builds the datasets
    seed = checkpoint['meta'].get('seed')
    randomness = cfg.get('randomness') or {}
    if seed is not None and randomness.get('seed') is None:
        cfg.randomness = dict(randomness, seed=seed)


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    check_config_keys(cfg, args.config)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        setup_amp(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError(f'--auto-scale-lr needs auto_scale_lr.base_batch_size in {args.config}')
        cfg.auto_scale_lr.enable = True
    if args.partial_load:
        cfg.load_partial = True
    add_reliability_hooks(cfg)
    if args.resume is not None:
        setup_resume(cfg, args.resume)
    return cfg


def setup_distributed(cfg: Config) -> None:
    """Initialise the process group ourselves (gloo on CPU, nccl on GPU)."""
    if cfg.launcher == 'none':
        return
    init_dist_auto(cfg.launcher, **cfg.get('env_cfg', {}).get('dist_cfg', {}).get('init_kwargs', {}))
    if not torch.cuda.is_available() and cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='DeviceAwareDDP',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = build_cfg(args)
    setup_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
