"""Make a trained checkpoint publishable: weights and meta only, named after its content.

    python tools/model_converters/publish_model.py work_dirs/run/iter_300.pth \
        ckpts/bevformer_quickstart.pth [--save-keys meta state_dict]
    # -> ckpts/bevformer_quickstart-<first 8 hex digits of its sha256>.pth

IN is loaded safely (``weights_only`` with our allow-list; nothing in it runs). Everything but
``--save-keys`` is dropped (the optimizer state, ``message_hub``, ``param_schedulers``), as is
``meta['rng_states']`` (the per-rank RNG states exact resuming needs); the config, dataset meta,
seed, epoch / iteration stay in ``meta``. A checkpoint with NaN / inf weights is refused, naming
them. The file is written atomically (temp file, fsync, rename) as ``OUT-<sha8>.pth``, where
``sha8`` starts the sha256 of exactly the bytes written, as mmdet's ``publish_model.py`` names
them; ``sha256sum`` of the file starts with that suffix.

``--modules img_backbone img_neck`` keeps only those submodules' weights (e.g. a pretrained
backbone for another config's ``init_cfg=dict(type='Pretrained', prefix='img_backbone.')``);
``--fp16`` stores floating-point weights in half precision (half the size; loading casts them
back into the model's float32 parameters, a relative rounding of at most 2**-11).
"""
import argparse
import hashlib
import io
import os.path as osp
import sys
from typing import List, Optional, Sequence

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from projects.common.checkpoint import atomic_write_bytes, safe_load_checkpoint  # noqa: E402

#: meta entries that only serve resuming a training run
TRAINING_ONLY_META = ('rng_states', )


def _non_finite(state_dict: dict) -> List[str]:
    return [k for k, v in state_dict.items()
            if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]


def publish(in_file: str, out_file: str,
            save_keys: Sequence[str] = ('meta', 'state_dict'),
            modules: Optional[Sequence[str]] = None, fp16: bool = False) -> str:
    """Strip ``in_file`` to ``save_keys`` and write it as ``<out_file stem>-<sha8>.pth``.

    Args:
        modules (sequence of str, optional): keep only the weights under these top-level
            module names (``state_dict`` keys ``<name>.*``); each must match some weight.
        fp16 (bool): store floating-point weights as float16.

    Returns:
        str: the path written.
    """
    ckpt = safe_load_checkpoint(in_file, map_location='cpu')
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt:
        raise KeyError(f'{in_file}: not an mmengine checkpoint (no state_dict; has '
                       f'{sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__})')
    if 'state_dict' not in save_keys:
        raise ValueError(f'--save-keys must keep state_dict, got {list(save_keys)}')
    bad = _non_finite(ckpt['state_dict'])
    if bad:
        raise ValueError(f'{in_file}: {len(bad)} weights hold NaN / inf, refusing to publish: '
                         f'{bad[:10]}')
    dropped = [k for k in ckpt if k not in save_keys]
    out = {k: ckpt[k] for k in ckpt if k in save_keys}
    state = out['state_dict']
    if modules:
        missing = [m for m in modules if not any(k.startswith(m + '.') for k in state)]
        if missing:
            tops = sorted({k.split('.')[0] for k in state})
            raise KeyError(f'{in_file}: no weights under {missing}; its modules are {tops}')
        kept = {k: v for k, v in state.items() if k.split('.')[0] in modules}
        dropped += sorted({f'state_dict.{k.split(".")[0]}' for k in state if k not in kept})
        state = kept
    if fp16:
        state = {k: v.half() if torch.is_tensor(v) and v.is_floating_point() else v
                 for k, v in state.items()}
    out['state_dict'] = state
    if isinstance(out.get('meta'), dict):
        out['meta'] = {k: v for k, v in out['meta'].items() if k not in TRAINING_ONLY_META}
        dropped += [f'meta.{k}' for k in TRAINING_ONLY_META if k in ckpt['meta']]
    buf = io.BytesIO()
    torch.save(out, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    stem = out_file[:-4] if out_file.endswith('.pth') else out_file
    final = f'{stem}-{sha[:8]}.pth'
    if osp.abspath(final) == osp.abspath(in_file):
        raise ValueError(f'refusing to overwrite the input {in_file}')
    atomic_write_bytes(data, final)
    print(f'dropped {dropped or "nothing"}; {len(out["state_dict"])} tensors, '
          f'{len(data) / 2**20:.1f} MiB -> {final} (sha256 {sha})', flush=True)
    return final


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('in_file', help='a checkpoint written by training')
    parser.add_argument('out_file', help='the name to publish (the sha256 suffix is added)')
    parser.add_argument('--save-keys', nargs='+', default=['meta', 'state_dict'],
                        help='top-level keys to keep (default: meta state_dict)')
    parser.add_argument('--modules', nargs='+',
                        help='keep only the weights of these top-level modules '
                             '(e.g. img_backbone img_neck)')
    parser.add_argument('--fp16', action='store_true',
                        help='store floating-point weights in float16 (half the size)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    return publish(args.in_file, args.out_file, args.save_keys, args.modules, args.fp16)


if __name__ == '__main__':
    main()
