"""One row per training run: what its config changes against a base, and how it scored.

    .venv/bin/python tools/analysis/leaderboard.py WORK_DIR [WORK_DIR ...] \
        [--metrics NuScenes/NDS NuScenes/mAP] [--sort NuScenes/NDS] [--format md|csv] \
        [--base CONFIG] [--out FILE]

For each work dir (``tools/train.py --work-dir``): the resolved config the runner dumped
there, its final evaluation (the newest value of each metric in mmengine's scalar logs,
``<timestamp>/vis_data/scalars.json``, from validation during training or a later
``tools/test.py --work-dir`` run), the parameters of the model it builds, the training time
(sum of the per-iteration times) and iterations. The diff is against ``--base`` (a config
file), by default the first work dir's config; each changed key is shown with its resolved
values (``model.bev_encoder.bev_h: 50 → 25``).
"""
import argparse
import csv
import glob
import io
import json
import os.path as osp
import sys
from typing import Dict, List, Optional

from mmengine.config import Config

if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from tools.analysis.config_diff import config_diff, format_change  # noqa: E402

DEFAULT_METRICS = ('NuScenes/NDS', 'NuScenes/mAP')


def run_config(work_dir: str) -> str:
    """The config the runner dumped into ``work_dir`` (``<config name>.py``)."""
    dumped = sorted(glob.glob(osp.join(work_dir, '*.py')), key=osp.getmtime)
    if not dumped:
        raise FileNotFoundError(f'{work_dir}: no dumped config (*.py): is it a work dir of '
                                f'tools/train.py?')
    return dumped[-1]


def read_scalars(work_dir: str) -> List[dict]:
    """Every scalar record of every run in ``work_dir``, oldest run first."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')),
                   key=lambda p: osp.basename(osp.dirname(osp.dirname(p))))
    records = []
    for path in files:
        with open(path) as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise ValueError(f'{path}:{line_no}: not a JSON record ({err})') from err
    return records


def count_parameters(config: str) -> Optional[int]:
    """Parameters of the model the config builds (None if it cannot be built here)."""
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    from mmdet.registry import MODELS
    cfg = Config.fromfile(config)
    import_modules_from_strings(cfg.get('custom_imports', {}).get('imports', []))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    try:
        model = MODELS.build(cfg.model)
    except Exception:  # noqa: BLE001 - a run whose code is gone still gets its row
        return None
    return sum(p.numel() for p in model.parameters())


def summarize(work_dir: str, metrics: List[str], base: str) -> dict:
    """One leaderboard row for ``work_dir``."""
    config = run_config(work_dir)
    records = read_scalars(work_dir)
    train = sorted((r for r in records if 'loss' in r and 'time' in r),
                   key=lambda r: int(r.get('iter', r.get('step', 0))))
    # A record's time is the mean over the iterations since the previous record (the logger's
    # interval), so it counts that many times.
    train_time, last = 0.0, 0
    for r in train:
        it = int(r.get('iter', r.get('step', 0)))
        train_time += float(r['time']) * max(it - last, 1)
        last = it
    row = dict(name=osp.basename(osp.normpath(work_dir)), config=config,
               changes=[format_change(*d) for d in config_diff(base, config)],
               params=count_parameters(config), iters=last, train_time_s=train_time)
    for metric in metrics:
        values = [r[metric] for r in records if metric in r]
        row[metric] = values[-1] if values else None
    return row


def render(rows: List[dict], metrics: List[str], fmt: str) -> str:
    header = ['run', *metrics, 'params (M)', 'iters', 'train time', 'changes against base']
    lines = []
    for row in rows:
        values = [row['name']]
        values += ['-' if row[m] is None else f'{row[m]:.4f}' for m in metrics]
        values.append('-' if row['params'] is None else f'{row["params"] / 1e6:.2f}')
        values.append(str(row['iters']))
        values.append(f'{row["train_time_s"] / 60:.1f} min')
        values.append('; '.join(row['changes']) or '(the base)')
        lines.append(values)
    if fmt == 'csv':
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerows(lines)
        return buf.getvalue()
    out = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    out += ['| ' + ' | '.join(v.replace('|', '\\|') for v in values) + ' |' for values in lines]
    return '\n'.join(out) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--metrics', nargs='+', default=list(DEFAULT_METRICS))
    parser.add_argument('--sort', help='metric (or params / iters) to sort by, descending; '
                        'default the first metric')
    parser.add_argument('--format', choices=('md', 'csv'), default='md')
    parser.add_argument('--base', help='config to diff against (default: the first run\'s)')
    parser.add_argument('--out', help='also write the table to this file')
    args = parser.parse_args(argv)
    for work_dir in args.work_dirs:
        if not osp.isdir(work_dir):
            parser.error(f'not a directory: {work_dir}')
    base = args.base or run_config(args.work_dirs[0])
    rows = [summarize(w, args.metrics, base) for w in args.work_dirs]
    key = args.sort or args.metrics[0]
    if rows and key not in rows[0]:
        parser.error(f'--sort {key}: not one of {args.metrics + ["params", "iters"]}')
    rows.sort(key=lambda r: (r[key] is not None, r[key] or 0), reverse=True)
    table = render(rows, args.metrics, args.format)
    print(table, end='')
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
