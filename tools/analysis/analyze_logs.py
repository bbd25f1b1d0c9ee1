"""Curves and timing from mmengine's scalar logs (``<work_dir>/<timestamp>/vis_data/scalars.json``).

    python tools/analysis/analyze_logs.py plot_curve LOG [LOG ...] [--keys loss NuScenes/NDS]
        [--legend NAME ...] [--title TITLE] [--out curves.png]
    python tools/analysis/analyze_logs.py cal_train_time LOG [LOG ...] [--include-outliers]
        [--interval 1000]

A LOG is a ``scalars.json``, a run folder (``<work_dir>/<timestamp>``) or a work dir: then every
run in it, oldest first, is read as one log, so a resumed training continues its curve (a step
logged again, after resuming from an earlier checkpoint, takes the newer value).

mmengine writes one JSON record per logged step: training records carry ``iter`` (the global
iteration, also ``step``), ``lr``, ``loss`` and its terms, ``time`` / ``data_time`` (averaged over
``log_processor.window_size`` iterations), ``epoch`` in epoch-based runs; evaluation records
carry the metrics (``NuScenes/NDS``, ...). Training keys are plotted against the iteration,
metrics against the iteration of the training record before them (a metric logged by epoch
lands where that epoch ended). Without ``--out`` the figure is shown (needs a display).
"""
import argparse
import glob
import json
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


class ScalarLog:
    """The records of one log, split into training and evaluation records.

    Attributes:
        path (str): what was given.
        files (list[str]): the ``scalars.json`` files read, in order.
        train (list[dict]): training records (with ``iter``), by iteration.
        evals (list[dict]): evaluation records, each with ``_iter``: the iteration of the
            training record logged before it (0 when there is none).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.files = find_scalar_files(path)
        train: Dict[int, dict] = OrderedDict()
        self.evals: List[dict] = []
        for file in self.files:
            last_iter = 0
            with open(file) as f:
                for lineno, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise ValueError(f'{file}:{lineno}: not a JSON record ({err})') from None
                    if 'iter' in rec:
                        last_iter = int(rec['iter'])
                        train.pop(last_iter, None)  # a resumed run logs a step again
                        train[last_iter] = rec
                    else:
                        rec['_iter'] = last_iter
                        self.evals.append(rec)
        self.train = sorted(train.values(), key=lambda r: r['iter'])
        if not self.train and not self.evals:
            raise ValueError(f'{path}: no records in {self.files}')

    def keys(self) -> List[str]:
        seen = OrderedDict()
        for rec in self.train + self.evals:
            for key in rec:
                if key not in ('step', 'iter', 'epoch', '_iter'):
                    seen[key] = None
        return list(seen)

    def series(self, key: str):
        """(iterations, values) of a key (float arrays); KeyError naming the log's keys."""
        train = [(r['iter'], r[key]) for r in self.train if key in r]
        evals = [(r['_iter'], r[key]) for r in self.evals if key in r]
        points = train or evals
        if not points:
            raise KeyError(f'{self.path}: no key {key!r} in the log; it has {self.keys()}')
        xs, ys = zip(*points)
        return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def find_scalar_files(path: str) -> List[str]:
    """The ``scalars.json`` files a LOG argument names (see the module doc)."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path}: no such log file or folder')
    direct = osp.join(path, 'vis_data', 'scalars.json')
    if osp.isfile(direct):
        return [direct]
    runs = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not runs:
        raise FileNotFoundError(f'{path}: no vis_data/scalars.json in it or in its runs '
                                f'(<work_dir>/<timestamp>/vis_data/scalars.json)')
    return runs


# ------------------------------------------------------------------------------ plot_curve
def plot_curve(logs: Sequence[ScalarLog], keys: Sequence[str],
               legend: Optional[Sequence[str]] = None, title: Optional[str] = None,
               out: Optional[str] = None, dpi: int = 100):
    """One axes per key, a line per log; saved to ``out`` (PNG, PDF, ...) or shown.

    Returns:
        Figure: the matplotlib figure.
    """
    import matplotlib
    if out is not None:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if legend is None:
        legend = [log.path for log in logs]
    if len(legend) != len(logs):
        raise ValueError(f'--legend has {len(legend)} names for {len(logs)} logs')
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 3 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        for log, name in zip(logs, legend):
            xs, ys = log.series(key)
            marker = 'o' if len(xs) < 30 else None
            ax.plot(xs, ys, label=name, marker=marker, linewidth=1)
        ax.set_xlabel('iter')
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if len(logs) > 1:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=dpi)
        plt.close(fig)
        print(f'saved the curves of {list(keys)} to {out}')
    else:  # pragma: no cover - interactive
        plt.show()
    return fig


# -------------------------------------------------------------------------- cal_train_time
def train_time(log: ScalarLog, include_outliers: bool = False,
               interval: int = 1000) -> dict:
    """Timing of the training records of a log.

    Each record's ``time`` is the mean iteration time over the logger's window; a record stands
    for the iterations since the previous one. The first record (start-up: data workers,
    first-iteration allocations) is left out unless ``include_outliers``.

    Returns:
        dict: ``avg`` (s / iteration, weighted by iterations), ``slowest`` / ``fastest``
        ``(iter, s)``, ``std`` over the records, ``per_epoch`` ``{epoch: s}`` (epoch-based runs)
        or ``per_interval`` ``{(start, end): s}`` (``interval`` iterations a block), ``total`` (s).
    """
    recs = [r for r in log.train if 'time' in r]
    if not recs:
        raise KeyError(f'{log.path}: no training record with a time (IterTimerHook) in it')
    iters = np.array([r['iter'] for r in recs], dtype=np.int64)
    times = np.array([r['time'] for r in recs], dtype=np.float64)
    span = np.diff(np.concatenate([[0], iters]))
    if not include_outliers and len(recs) > 1:
        recs, iters, times, span = recs[1:], iters[1:], times[1:], span[1:]
    slow, fast = int(times.argmax()), int(times.argmin())
    out = dict(avg=float((times * span).sum() / span.sum()), std=float(times.std()),
               slowest=(int(iters[slow]), float(times[slow])),
               fastest=(int(iters[fast]), float(times[fast])), total=float((times * span).sum()),
               iters=int(span.sum()))
    if 'epoch' in recs[0]:
        per = OrderedDict()
        for rec, t, n in zip(recs, times, span):
            per[int(rec['epoch'])] = per.get(int(rec['epoch']), 0.0) + float(t * n)
        out['per_epoch'] = per
    else:
        per = OrderedDict()
        for it, t, n in zip(iters, times, span):
            block = (int(it) - 1) // interval
            key = (block * interval + 1, (block + 1) * interval)
            per[key] = per.get(key, 0.0) + float(t * n)
        out['per_interval'] = per
    return out


def cal_train_time(logs: Sequence[ScalarLog], include_outliers: bool = False,
                   interval: int = 1000) -> List[dict]:
    results = []
    for log in logs:
        res = train_time(log, include_outliers, interval)
        results.append(res)
        print(f'{"-" * 5}Analyze train time of {log.path}{"-" * 5}')
        print(f'iterations timed: {res["iters"]}, total {res["total"] / 3600:.2f} h')
        print(f'average iter time: {res["avg"]:.4f} s/iter (std over the logged windows '
              f'{res["std"]:.4f})')
        print(f'slowest logged window: iter {res["slowest"][0]} at {res["slowest"][1]:.4f} '
              f's/iter')
        print(f'fastest logged window: iter {res["fastest"][0]} at {res["fastest"][1]:.4f} '
              f's/iter')
        if 'per_epoch' in res:
            for epoch, seconds in res['per_epoch'].items():
                print(f'epoch {epoch}: {seconds / 60:.1f} min')
        else:
            for (start, end), seconds in res['per_interval'].items():
                print(f'iters {start}-{end}: {seconds / 60:.1f} min')
    return results


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Analyze mmengine scalar logs')
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='plot training / evaluation curves')
    plot.add_argument('logs', nargs='+', help='scalars.json files, run folders or work dirs')
    plot.add_argument('--keys', nargs='+', default=['loss'],
                      help='what to plot, e.g. loss loss_cls lr NuScenes/NDS')
    plot.add_argument('--legend', nargs='+', help='a name per log (default: the paths)')
    plot.add_argument('--title', help='figure title')
    plot.add_argument('--out', help='save the figure here instead of showing it')
    plot.add_argument('--dpi', type=int, default=100)
    timing = sub.add_parser('cal_train_time', help='iteration time of training runs')
    timing.add_argument('logs', nargs='+', help='scalars.json files, run folders or work dirs')
    timing.add_argument('--include-outliers', action='store_true',
                        help='count the first logged window (start-up) as well')
    timing.add_argument('--interval', type=int, default=1000,
                        help='iteration-based runs: report the time per this many iterations')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None):
    args = parse_args(argv)
    logs = [ScalarLog(path) for path in args.logs]
    if args.task == 'plot_curve':
        return plot_curve(logs, args.keys, args.legend, args.title, args.out, args.dpi)
    return cal_train_time(logs, args.include_outliers, args.interval)


if __name__ == '__main__':
    main()
