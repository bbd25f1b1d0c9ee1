"""Convert an official BEVFormer v1 checkpoint (fundamentalvision/BEVFormer) to ours.

    python tools/model_converters/bevformer_official_to_mm.py SRC.pth DST.pth \
        [--config configs/bevformer/official/bevformer_tiny_official.py]

SRC is loaded safely (``weights_only`` with our allow-list; nothing in it is executed). Keys
are mapped by ``projects/bevformer/models/official.py``; an official key without a counterpart
stops the conversion with the full list. With ``--config`` the result is loaded into the
model built from that config with ``strict=True`` (missing, unexpected and mis-shaped keys
are all listed) before DST is written. DST is written atomically as
``{'meta': ..., 'state_dict': ...}``, loadable by ``tools/test.py`` and ``load_from``.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from projects.bevformer.models.official import convert_official_state_dict  # noqa: E402
from projects.common.checkpoint import atomic_save_checkpoint, safe_load_checkpoint  # noqa: E402


def check_against_config(state_dict: dict, config: str) -> None:
    """Build the model of ``config`` and load ``state_dict`` into it with ``strict=True``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS

    import projects.bevformer  # noqa: F401 (registers the modules)

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    ours = model.state_dict()
    problems = []
    missing = [k for k in ours if k not in state_dict]
    unexpected = [k for k in state_dict if k not in ours]
    shapes = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(ours[k].shape)}'
              for k, v in state_dict.items() if k in ours and v.shape != ours[k].shape]
    for name, keys in (('missing in the checkpoint', missing),
                       ('not in the model', unexpected), ('shape mismatch', shapes)):
        if keys:
            problems.append(f'{len(keys)} {name}: {keys}')
    if problems:
        raise RuntimeError(f'the converted checkpoint does not fit {config}:\n  ' +
                           '\n  '.join(problems))
    model.load_state_dict(state_dict, strict=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official BEVFormer v1 checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint for our BEVFormer')
    parser.add_argument('--config', help='our config the result must load into (strict)')
    parser.add_argument('--num-feature-levels', type=int, default=None,
                        help='encoder feature levels (default: the FPN outputs in SRC)')
    args = parser.parse_args(argv)

    ckpt = safe_load_checkpoint(args.src, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise TypeError(f'{args.src}: expected a dict checkpoint, got {type(ckpt).__name__}')
    src_sd = ckpt.get('state_dict', ckpt)
    num_levels = args.num_feature_levels
    if args.config is not None and num_levels is None:
        from mmengine.config import Config
        num_levels = Config.fromfile(args.config).model.bev_encoder.get('num_feature_levels')
    try:
        state_dict, notes = convert_official_state_dict(src_sd, num_levels)
    except (KeyError, ValueError) as err:
        raise SystemExit(f'{args.src}: {err}')
    if args.config is not None:
        check_against_config(state_dict, args.config)
    src_meta = ckpt.get('meta', {}) if isinstance(ckpt.get('meta'), dict) else {}
    meta = dict(converted_from=osp.abspath(args.src), converter='bevformer_official_to_mm',
                notes=notes)
    for key in ('CLASSES', 'epoch', 'iter'):
        if key in src_meta:
            meta[key] = src_meta[key]
    if 'CLASSES' in src_meta:
        meta['dataset_meta'] = dict(classes=tuple(src_meta['CLASSES']))
    atomic_save_checkpoint(dict(meta=meta, state_dict=state_dict), args.dst)
    print(f'{args.src}: {len(src_sd)} official entries -> {len(state_dict)} in {args.dst}')
    for note in notes:
        print(f'  {note}')
    if args.config is not None:
        print(f'  loads into {args.config} with strict=True')
    return 0


if __name__ == '__main__':
    torch.set_num_threads(1)
    sys.exit(main())
