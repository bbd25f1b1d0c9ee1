"""Render samples of an info file (GT and / or predictions) to one PNG per sample."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import mmengine
import numpy as np

from ..constants import CAMERAS, CLASSES
from ..datasets.transforms.loading import LoadMultiViewImages
from .multiview import draw_sample
from .predictions import load_predictions
from .score_threshold import ScoreThreshold, choose_score_threshold, select_predictions


def _load_points(path: str) -> Optional[np.ndarray]:
    """nuScenes LiDAR sweep (float32 records of 5 values) or None when absent / unreadable."""
    if not path or not osp.isfile(path):
        return None
    raw = np.fromfile(path, dtype=np.float32)
    return raw.reshape(-1, 5) if raw.size % 5 == 0 else None


def _prediction_rule(score_thr: Union[float, str], preds: Optional[dict], data_list: list,
                     classes: Sequence[str], topk: Optional[int],
                     info_name: str) -> Tuple[Optional[float], Optional[str]]:
    """The threshold to draw predictions at (None: nothing matched, best guesses only) and the
    title's words for it (None without predictions)."""
    cap = '' if topk is None else f', at most {topk} per sample'
    if isinstance(score_thr, str):
        if score_thr != 'auto':
            raise ValueError(f"visualize_infos: score_thr must be a number or 'auto', got "
                             f'{score_thr!r}')
        if preds is None:
            raise ValueError("visualize_infos: score_thr='auto' needs pred_file (the threshold "
                             'is chosen from the predictions)')
        choice: ScoreThreshold = choose_score_threshold(data_list, preds, classes)
        print(f'[visualize] {choice.summary()}', flush=True)
        if choice.threshold is None:
            guesses = (f'red: its {topk} best guesses, not detections' if topk
                       else 'none drawn')
            return None, (f'no prediction matches the ground truth: model has not learned yet '
                          f'({guesses})')
        return choice.threshold, (
            f'score >= {choice.threshold:g} (max F1 over {info_name}: P {choice.precision:.2f} '
            f'R {choice.recall:.2f} F1 {choice.f1:.2f}, same class within 2 m){cap}'
            # precision < 0.5: more red boxes are wrong than right; say so in the picture
            + ('; most red boxes match no GT box' if choice.precision < 0.5 else ''))
    if preds is None:
        return float(score_thr), None
    return float(score_thr), f'score >= {float(score_thr):g}{cap}'


def visualize_infos(info_file: str,
                    data_root: str,
                    out_dir: str,
                    pred_file: Optional[str] = None,
                    num: Optional[int] = None,
                    score_thr: Union[float, str] = 0.3,
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
        score_thr (float or 'auto'): hide predictions scoring below it. ``'auto'``: the
            score of maximum F1 over all the info file's samples that have predictions
            (same class, centre within 2 m, the nuScenes matching: ``score_threshold.py``),
            printed with its precision and recall; when no prediction matches any GT box,
            only the ``topk`` best guesses are drawn (none without ``topk``), titled as such.
        topk (int, optional): draw at most the ``topk`` best-scoring predictions per sample
            (after ``score_thr``).
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
    threshold, pred_text = _prediction_rule(score_thr, preds, infos['data_list'], classes,
                                            topk, osp.basename(info_file))
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
            sel = select_predictions(pred['scores_3d'], threshold, topk)
            pb, ps, pl = pred['bboxes_3d'][sel], pred['scores_3d'][sel], pred['labels_3d'][sel]
        points = _load_points(osp.join(data_root, info['lidar_path'])
                              if info.get('lidar_path') else '')
        num_gt = 0 if gt_boxes is None else len(gt_boxes)
        title = (f'{info.get("scene_name", "")} frame {info.get("frame_idx", "?")}  token '
                 f'{token}' + ('' if pred_text is None else f'\npredictions: {pred_text}'))
        legend = (f'ground truth ({num_gt})' if show_gt else '',
                  '' if pb is None else f'predictions ({len(pb)}), labelled "class score"')
        out_file = osp.join(out_dir, f'{token}.png')
        fig = draw_sample(list(imgs), lidar2img, cameras, gt_boxes=gt_boxes, pred_boxes=pb,
                          pred_scores=ps, pred_labels=pl, classes=classes, points=points,
                          bev_range=bev_range, title=title, legend=legend, out_file=out_file,
                          dpi=dpi)
        fig.clear()
        written.append(out_file)
    return written
