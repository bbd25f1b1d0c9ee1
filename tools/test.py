"""Evaluate a checkpoint with an mmengine config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--show-dir DIR] [--partial-load] [--cfg-options k=v ...]
                         [--launcher ...]

Multi-GPU: tools/dist_test.sh CONFIG CHECKPOINT GPUS [args].

The checkpoint must fit the model (every key, every shape) unless ``--partial-load``;
``--out`` is written before the metrics are computed, so a failing evaluation keeps it.
"""
import argparse
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.evaluator import DumpResults  # noqa: E402,F401
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import projects.common  # noqa: E402,F401  (safe checkpoints, CPU DDP)
from projects.common import StrictDictAction, check_config_keys, init_dist_auto  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir for the evaluation metrics and logs')
    parser.add_argument('--out', help='dump the predictions to this pickle file')
    parser.add_argument('--show-dir', help='save pictures of the predictions in this dir '
                        '(relative to the work dir of the run)')
    parser.add_argument('--partial-load', action='store_true',
                        help='evaluate even if the checkpoint fits the model only in part '
                        '(the rest keeps its initialisation); refused by default')
    parser.add_argument(
        '--cfg-options', nargs='+', action=StrictDictAction,
        help='override config settings, e.g. test_dataloader.batch_size=2')
    parser.add_argument('--fuse-conv-bn', action='store_true',
                        help='fold BatchNorm into the convolutions of the image backbone + '
                        'neck after loading (faster; float rounding only)')
    parser.add_argument('--channels-last', action='store_true',
                        help='run the image backbone + neck in NHWC memory format')
    parser.add_argument('--compile-bev-encoder', action='store_true',
                        help='torch.compile the BEV encoder layers (the first frame pays the '
                        'compilation)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_show(cfg: Config, show_dir: str) -> None:
    hooks = cfg.get('default_hooks', ConfigDict())
    if 'visualization' not in hooks:
        raise KeyError('--show-dir needs default_hooks.visualization in the config '
                       '(e.g. DetVisualizationHook or BEVVisualizationHook)')
    hooks.visualization.draw = True
    hooks.visualization.test_out_dir = show_dir


def add_dump(cfg: Config, out: str) -> None:
    """Dump the predictions first: the evaluator runs its metrics in order, so ``--out`` is
    on disk before a metric that fails."""
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl file, got {out}')
    dump = ConfigDict(type='DumpResults', out_file_path=out)
    if isinstance(cfg.test_evaluator, (list, tuple)):
        cfg.test_evaluator = [dump] + list(cfg.test_evaluator)
    else:
        cfg.test_evaluator = [dump, cfg.test_evaluator]


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
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    # strict unless asked here: a config's load_partial (for training's load_from, e.g. a
    # pretrained backbone) must not let a misfit checkpoint be evaluated
    cfg.load_partial = bool(args.partial_load)
    if args.show_dir:
        enable_show(cfg, args.show_dir)
    if args.out:
        add_dump(cfg, args.out)
    return cfg


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = build_cfg(args)
    if cfg.launcher != 'none':
        init_dist_auto(cfg.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.fuse_conv_bn or args.channels_last or args.compile_bev_encoder:
        from projects.bevformer.apis import OptimizeForInferenceHook
        runner.register_hook(OptimizeForInferenceHook(args.fuse_conv_bn, args.channels_last,
                                                      args.compile_bev_encoder))
    return runner.test()


if __name__ == '__main__':
    main()
