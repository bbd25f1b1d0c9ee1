"""The score above which predictions are worth drawing: the one that maximises F1 over a whole
info file, with the nuScenes detection matching.

Matching follows the devkit's ``nuscenes.eval.detection.algo.accumulate``: predictions are taken
in descending score order and each one takes the nearest still-free GT box of its class in its
sample if that centre (x, y) distance is below 2 m; boxes beyond the devkit's class range
(distance from the ego) do not count, nor do GT boxes without LiDAR / radar points
(``valid_flag``). The devkit's own function is not called because it returns precision and
recall interpolated on a recall grid, while F1 per threshold needs the exact counts;
tests/test_bevformer/test_visualization/test_score_threshold.py checks that this matching
gives the devkit's curve.

Because the matching is greedy by score, which predictions above a threshold ``t`` match does
not depend on the predictions below ``t``: one pass gives the true positives at every ``t``.
"""
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

MATCH_DIST = 2.0  # m: the middle one of the nuScenes metric's four centre distances
EVAL_CONFIG = 'detection_cvpr_2019'


@dataclass(frozen=True)
class ScoreThreshold:
    """The chosen threshold and what it gives over the info file.

    ``threshold`` is None when no prediction matches any GT box; the counts are then those of
    all predictions.
    """
    threshold: Optional[float]
    precision: float
    recall: float
    f1: float
    num_tp: int
    num_pred: int  # predictions scoring >= threshold (inside the class ranges)
    num_gt: int
    num_samples: int

    def summary(self) -> str:
        """One line for the terminal."""
        where = (f'{self.num_samples} samples, {self.num_gt} GT boxes; same class, centre '
                 f'within {MATCH_DIST:g} m')
        if self.threshold is None:
            return (f'no prediction matches the ground truth ({self.num_pred} predictions, '
                    f'{where}): the model has not learned yet')
        return (f'score threshold {self.threshold:g} (max F1): precision {self.precision:.3f}, '
                f'recall {self.recall:.3f}, F1 {self.f1:.3f} ({self.num_tp} of the '
                f'{self.num_pred} predictions above it match; {where})')


def greedy_centre_match(pred_xy: np.ndarray, pred_scores: np.ndarray, pred_labels: np.ndarray,
                        gt_xy: np.ndarray, gt_labels: np.ndarray,
                        dist_th: float = MATCH_DIST) -> np.ndarray:
    """Which predictions of one sample match a GT box (the devkit's greedy rule).

    Args:
        pred_xy (ndarray): (K, 2) box centres (m).
        pred_scores (ndarray): (K,).
        pred_labels (ndarray): (K,) class indices.
        gt_xy (ndarray): (M, 2) in the same frame.
        gt_labels (ndarray): (M,).
        dist_th (float): a match needs a centre distance below it (strictly, as the devkit).

    Returns:
        ndarray: (K,) bool, True for a true positive.
    """
    pred_xy = np.asarray(pred_xy, dtype=np.float64).reshape(-1, 2)
    gt_xy = np.asarray(gt_xy, dtype=np.float64).reshape(-1, 2)
    gt_labels = np.asarray(gt_labels)
    free = np.ones(len(gt_xy), dtype=bool)
    is_tp = np.zeros(len(pred_xy), dtype=bool)
    for k in np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind='stable'):
        cand = np.flatnonzero(free & (gt_labels == pred_labels[k]))
        if len(cand) == 0:
            continue
        dist = np.linalg.norm(gt_xy[cand] - pred_xy[k], axis=1)
        j = int(np.argmin(dist))  # the first of equally near ones, as the devkit's strict '<'
        if dist[j] < dist_th:
            free[cand[j]] = False
            is_tp[k] = True
    return is_tp


def _short_threshold(low: float, high: float) -> float:
    """The decimal with the fewest digits in (low, high]: ``score >= t`` then keeps exactly the
    scores >= high, and the printed value is the value used."""
    for digits in range(1, 16):
        scale = 10.0**digits
        t = round((np.floor(low * scale) + 1) / scale, digits)
        if low < t <= high:
            return t
    return high


def max_f1_threshold(scores: np.ndarray, is_tp: np.ndarray, num_gt: int,
                     num_samples: int = 0) -> ScoreThreshold:
    """The score threshold of maximum F1 from matched predictions.

    Args:
        scores (ndarray): (N,) scores of all predictions (all samples).
        is_tp (ndarray): (N,) bool from :func:`greedy_centre_match`.
        num_gt (int): GT boxes that count (the false negatives are ``num_gt - TP``).
        num_samples (int): for the summary only.

    Returns:
        ScoreThreshold: ties in F1 go to the higher threshold (fewer boxes drawn); the
        threshold lies between the last score kept and the next lower one.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_tp = np.asarray(is_tp, dtype=bool).reshape(-1)
    if not is_tp.any():
        return ScoreThreshold(None, 0.0, 0.0, 0.0, 0, len(scores), num_gt, num_samples)
    order = np.argsort(-scores, kind='stable')
    scores, is_tp = scores[order], is_tp[order]
    tp = np.cumsum(is_tp)
    kept = np.arange(1, len(scores) + 1)
    # A threshold keeps all equal scores together: evaluate at the last of each run of ties.
    ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    f1 = 2 * tp[ends] / (kept[ends] + num_gt)
    best = ends[int(np.argmax(f1))]
    high = scores[best]
    low = scores[best + 1] if best + 1 < len(scores) else (0.0 if high > 0 else high - 1.0)
    return ScoreThreshold(threshold=_short_threshold(low, high),
                          precision=float(tp[best] / kept[best]),
                          recall=float(tp[best] / num_gt),
                          f1=float(2 * tp[best] / (kept[best] + num_gt)),
                          num_tp=int(tp[best]), num_pred=int(kept[best]), num_gt=num_gt,
                          num_samples=num_samples)


def _ego_xy(boxes: np.ndarray, lidar2ego: Optional[np.ndarray]) -> np.ndarray:
    """(K, 2) ego-frame (x, y) of the centres of LiDAR-frame boxes (K, >=7), z at the bottom.
    The ego frame is where the devkit measures its class ranges."""
    centres = np.array(boxes[:, :3], dtype=np.float64)
    centres[:, 2] += boxes[:, 5] / 2
    if lidar2ego is None:
        return centres[:, :2]
    lidar2ego = np.asarray(lidar2ego, dtype=np.float64)
    return (centres @ lidar2ego[:3, :3].T + lidar2ego[:3, 3])[:, :2]


def _in_range(xy: np.ndarray, labels: np.ndarray, classes: Sequence[str],
              class_range: Mapping[str, float]) -> np.ndarray:
    """(K,) bool: closer to the ego than the class range (no limit for an unknown class)."""
    limit = np.array([class_range.get(classes[int(l)], np.inf) if 0 <= int(l) < len(classes)
                      else np.inf for l in labels], dtype=np.float64)
    return np.linalg.norm(xy, axis=1) < limit


def choose_score_threshold(data_list: Sequence[dict],
                           preds: Mapping[str, Dict[str, np.ndarray]],
                           classes: Sequence[str],
                           class_range: Optional[Mapping[str, float]] = None,
                           dist_th: float = MATCH_DIST) -> ScoreThreshold:
    """Maximum-F1 score threshold of the predictions against the GT of every info sample.

    Args:
        data_list (sequence of dict): the info file's samples (docs/data_format.md); those
            without predictions are left out.
        preds (mapping): token -> ``{'bboxes_3d': (K, >=7), 'scores_3d': (K,),
            'labels_3d': (K,)}`` (``load_predictions``).
        classes (sequence of str): the names of the label indices.
        class_range (mapping, optional): class name -> metres; default: the devkit's
            ``detection_cvpr_2019`` ranges.
        dist_th (float): centre distance (m) for a match.

    Returns:
        ScoreThreshold: see :func:`max_f1_threshold`.
    """
    if class_range is None:
        from nuscenes.eval.common.config import config_factory
        class_range = config_factory(EVAL_CONFIG).class_range
    all_scores, all_tp = [], []
    num_gt = num_samples = 0
    for info in data_list:
        pred = preds.get(info.get('token'))
        if pred is None:
            continue
        num_samples += 1
        lidar2ego = info.get('lidar2ego')
        inst = [i for i in info.get('instances', [])
                if int(i['label']) >= 0 and i.get('valid_flag', True)]
        gt_boxes = np.array([i['bbox_3d'] for i in inst], dtype=np.float64).reshape(-1, 7)
        gt_labels = np.array([int(i['label']) for i in inst], dtype=np.int64)
        gt_xy = _ego_xy(gt_boxes, lidar2ego)
        keep = _in_range(gt_xy, gt_labels, classes, class_range)
        pred_xy = _ego_xy(pred['bboxes_3d'], lidar2ego)
        pred_keep = _in_range(pred_xy, pred['labels_3d'], classes, class_range)
        scores = pred['scores_3d'][pred_keep]
        all_scores.append(scores)
        all_tp.append(greedy_centre_match(pred_xy[pred_keep], scores,
                                          pred['labels_3d'][pred_keep], gt_xy[keep],
                                          gt_labels[keep], dist_th))
        num_gt += int(keep.sum())
    if not all_scores:
        return ScoreThreshold(None, 0.0, 0.0, 0.0, 0, 0, num_gt, 0)
    return max_f1_threshold(np.concatenate(all_scores), np.concatenate(all_tp), num_gt,
                            num_samples)


def select_predictions(scores: np.ndarray, threshold: Optional[float],
                       topk: Optional[int]) -> np.ndarray:
    """Indices of the predictions to draw, best first.

    Args:
        scores (ndarray): (K,).
        threshold (float, optional): keep scores >= it; None (nothing matched, no score
            separates detections from noise): keep only the ``topk`` best guesses.
        topk (int, optional): at most this many.

    Returns:
        ndarray: (<=K,) int indices into ``scores``.
    """
    scores = np.asarray(scores)
    order = np.argsort(-scores, kind='stable')
    if threshold is None:
        return order[:topk or 0]
    return order[scores[order] >= threshold][:topk]
