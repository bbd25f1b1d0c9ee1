"""Draw what a config's data pipeline feeds the model: each item's images after every transform
(resize, crop, photometric augmentation) with its GT boxes projected by the item's own
``lidar2img``, on the six cameras and in BEV; one PNG per item.

    python tools/analysis/browse_dataset.py CONFIG --out-dir browse [--split train|val|test]
        [--num 20] [--all-frames] [--cfg-options key=value ...]

The pictures show the tensors the model gets before ``BEVDataPreprocessor`` (which only
normalises and pads): raw pixel values, clipped to [0, 255], channels as loaded (BGR, shown as
RGB). A box drawn off its object here is a geometry bug in the data, not in the model.
``--all-frames`` also draws the earlier frames of the temporal queue (their images and
projections; the item's GT belongs to the current frame only).
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from mmengine.config import Config  # noqa: E402

import projects.common  # noqa: E402,F401  (safe .pkl loading of the info files)
from projects.common.config_check import StrictDictAction  # noqa: E402


def build_dataset(cfg: Config, split: str = 'train'):
    """The ``{split}_dataloader.dataset`` of a config, built with its pipeline."""
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    from mmdet.registry import DATASETS
    import_modules_from_strings(cfg.get('custom_imports', {}).get('imports', []))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader = cfg.get(f'{split}_dataloader')
    if loader is None:
        raise KeyError(f'the config has no {split}_dataloader')
    return DATASETS.build(loader.dataset)


def item_frames(item: dict) -> List[dict]:
    """The frames of one dataset item as drawable pieces, oldest first (current last).

    Args:
        item (dict): ``dataset[i]``: ``inputs['img']`` (T, N_cam, 3, H, W) float (BGR as loaded),
            ``inputs['lidar2img']`` (T, N_cam, 4, 4), ``data_samples`` (the current frame's).

    Returns:
        list[dict]: per frame ``imgs`` (N_cam RGB uint8 (H, W, 3)), ``lidar2img`` (N_cam, 4, 4),
        ``cam_names``, ``gt_boxes`` / ``gt_labels`` (the current frame only, else None) and
        ``token``.
    """
    inputs, sample = item['inputs'], item['data_samples']
    imgs = inputs['img']
    if imgs.dim() == 4:  # a pipeline without the temporal stacking: (N_cam, 3, H, W)
        imgs = imgs[None]
    lidar2img = inputs.get('lidar2img')
    if lidar2img is None:
        lidar2img = np.asarray(sample.metainfo['lidar2img'])[None]
    lidar2img = np.asarray(lidar2img, dtype=np.float64)
    meta = sample.metainfo
    cam_names = list(meta.get('cam_names') or [f'cam{i}' for i in range(imgs.shape[1])])
    history = meta.get('history', [])
    frames = []
    for t in range(imgs.shape[0]):
        pixels = imgs[t].permute(0, 2, 3, 1).cpu().numpy()  # (N_cam, H, W, 3) BGR
        rgb = [np.ascontiguousarray(np.clip(p, 0, 255).astype(np.uint8)[..., ::-1])
               for p in pixels]
        current = t == imgs.shape[0] - 1
        gt = sample.gt_instances_3d if current and 'gt_instances_3d' in sample else None
        token = meta.get('token', '') if current else (
            history[t].get('token', f'history{t}') if t < len(history) else f'history{t}')
        frames.append(dict(imgs=rgb, lidar2img=lidar2img[t], cam_names=cam_names,
                           gt_boxes=None if gt is None else gt.bboxes_3d.cpu().numpy(),
                           gt_labels=None if gt is None else gt.labels_3d.cpu().numpy(),
                           token=token))
    return frames


def browse(cfg: Config, out_dir: str, split: str = 'train', num: int = 10,
           all_frames: bool = False, bev_range: float = 51.2, dpi: int = 80) -> List[str]:
    """Draw the first ``num`` items of the split's dataset (after its pipeline) to ``out_dir``.

    Returns:
        list[str]: the PNG paths written.
    """
    from projects.bevformer.visualization import draw_sample
    dataset = build_dataset(cfg, split)
    classes = (dataset.metainfo or {}).get('classes')
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for index in range(min(num, len(dataset))):
        item = dataset[index]
        frames = item_frames(item)
        meta = item['data_samples'].metainfo
        chosen = frames if all_frames else frames[-1:]
        for k, frame in enumerate(chosen):
            t = len(frames) - len(chosen) + k
            boxes = frame['gt_boxes']
            n_gt = 0 if boxes is None else len(boxes)
            hw = frame['imgs'][0].shape[:2]
            title = (f'{split}[{index}] {meta.get("scene_name", "")} {frame["token"]} '
                     f'(queue frame {t + 1}/{len(frames)}, {hw[1]}x{hw[0]}, {n_gt} GT boxes)')
            name = f'{index:05d}_{frame["token"]}' + (f'_t{t}' if all_frames else '') + '.png'
            path = osp.join(out_dir, name)
            fig = draw_sample(frame['imgs'], frame['lidar2img'], frame['cam_names'],
                              gt_boxes=boxes, gt_labels=frame['gt_labels'], classes=classes,
                              bev_range=bev_range, title=title, out_file=path, dpi=dpi)
            del fig
            paths.append(path)
            print(path, flush=True)
    return paths


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('--out-dir', required=True, help='folder for the PNGs')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'],
                        help='whose dataset and pipeline to draw (default: train)')
    parser.add_argument('--num', type=int, default=10, help='number of items to draw')
    parser.add_argument('--all-frames', action='store_true',
                        help='also draw the earlier frames of each temporal queue')
    parser.add_argument('--bev-range', type=float, default=51.2, help='BEV half-size (m)')
    parser.add_argument('--dpi', type=int, default=80)
    parser.add_argument('--cfg-options', nargs='+', action=StrictDictAction,
                        help='override settings, e.g. train_dataloader.dataset.data_root=...')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return browse(cfg, args.out_dir, args.split, args.num, args.all_frames, args.bev_range,
                  args.dpi)


if __name__ == '__main__':
    main()
