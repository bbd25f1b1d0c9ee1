"""Render samples of an info file (GT and / or predictions) to one PNG per sample."""
import os
import os.path as osp
from typing import List, Optional, Sequence

import mmengine
import numpy as np

from ..constants import CAMERAS, CLASSES
from ..datasets.transforms.loading import LoadMultiViewImages
from .multiview import draw_sample
from .predictions import load_predictions


def _load_points(path: str) -> Optional[np.ndarray]:
    """nuScenes LiDAR sweep (float32 records of 5 values) or None when absent / unreadable."""
    if not path or not osp.isfile(path):
        return None
    raw = np.fromfile(path, dtype=np.float32)
    return raw.reshape(-1, 5) if raw.size % 5 == 0 else None


def visualize_infos(info_file: str,
                    data_root: str,
                    out_dir: str,
                    pred_file: Optional[str] = None,
                    num: Optional[int] = None,
                    score_thr: float = 0.3,
                    topk: Optional[int] = None,
                    show_gt: bool = True,
                    tokens: Optional[Sequence[str]] = None,
                    bev_range: float = 51.2,
                    dpi: int = 80) -> List[str]:
    """Draw samples of an info file; one ``<token>.png`` per sample in ``out_dir``.

    Args:
        info_file (str): info pickle (docs/data_format.md).
        data_root (str): the dataroot the info's image / LiDAR paths are relative to.
        out_dir (str): output folder (created).
        pred_file (str, optional): predictions pickle (format: ``predictions.py``); when
            given, only samples that have predictions are drawn.
        num (int, optional): draw at most this many samples (in info order).
        score_thr (float): hide predictions scoring below it.
        topk (int, optional): draw at most the ``topk`` best-scoring predictions per sample
            (after ``score_thr``); with ``score_thr=0`` it shows an early model's best guesses.
        show_gt (bool): draw the GT boxes (label >= 0).
        tokens (sequence of str, optional): draw only these sample tokens.
        bev_range (float): half-size (m) of the BEV plot.
        dpi (int): PNG resolution.

    Returns:
        list[str]: the PNG paths written.
    """
    infos = mmengine.load(info_file)
    if not isinstance(infos, dict) or 'data_list' not in infos:
        raise ValueError(f'{info_file}: not an info file (expected a dict with data_list)')
    meta = infos.get('metainfo', {})
    classes = list(meta.get('classes', CLASSES))
    cameras = list(meta.get('cameras', CAMERAS))
    preds = load_predictions(pred_file) if pred_file else None
    wanted = set(tokens) if tokens is not None else None
    loader = LoadMultiViewImages()
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for index, info in enumerate(infos['data_list']):
        if num is not None and len(written) >= num:
            break
        token = info.get('token')
        if (wanted is not None and token not in wanted) or (preds is not None
                                                            and token not in preds):
            continue
        missing = [c for c in cameras if c not in info.get('cams', {})]
        if missing:
            raise KeyError(f'{info_file}: sample {index} (token {token}) has no cams {missing}')
        cams = [info['cams'][c] for c in cameras]
        imgs = loader.transform(dict(
            img_paths=[osp.join(data_root, c['img_path']) for c in cams]))['img'][..., ::-1]
        lidar2img = np.stack([np.asarray(c['lidar2img'], dtype=np.float64) for c in cams])
        gt_boxes = None
        if show_gt and info.get('instances'):
            keep = [i for i in info['instances'] if int(i['label']) >= 0]
            gt_boxes = np.array([i['bbox_3d'] for i in keep], dtype=np.float64).reshape(-1, 7)
        pred = preds.get(token) if preds is not None else None
        pb = ps = pl = None
        if pred is not None:
            sel = np.flatnonzero(pred['scores_3d'] >= score_thr)
            sel = sel[np.argsort(-pred['scores_3d'][sel], kind='stable')][:topk]
            pb, ps, pl = pred['bboxes_3d'][sel], pred['scores_3d'][sel], pred['labels_3d'][sel]
        points = _load_points(osp.join(data_root, info['lidar_path'])
                              if info.get('lidar_path') else '')
        title = (f'{info.get("scene_name", "")} frame {info.get("frame_idx", "?")}  token '
                 f'{token}  GT {0 if gt_boxes is None else len(gt_boxes)}'
                 + ('' if pb is None else f'  pred {len(pb)} (score >= {score_thr}'
                    + ('' if topk is None else f', top {topk}') + ')'))
        out_file = osp.join(out_dir, f'{token}.png')
        fig = draw_sample(list(imgs), lidar2img, cameras, gt_boxes=gt_boxes, pred_boxes=pb,
                          pred_scores=ps, pred_labels=pl, classes=classes, points=points,
                          bev_range=bev_range, title=title, out_file=out_file, dpi=dpi)
        fig.clear()
        written.append(out_file)
    return written
