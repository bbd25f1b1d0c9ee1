"""Tests for projects/bevformer/visualization/score_threshold.py: the maximum-F1 score threshold
that ``tools/analysis/visualize.py --score-thr auto`` draws predictions at."""
import numpy as np
import pytest

from projects.bevformer.visualization.score_threshold import (choose_score_threshold,
                                                              greedy_centre_match,
                                                              max_f1_threshold,
                                                              select_predictions)

CLASSES = ['car', 'pedestrian']
NO_RANGE = {}  # no class range: every box counts


def _info(token, gt):
    """An info sample with GT boxes ``gt``: list of (x, y, label[, valid_flag])."""
    return dict(token=token, instances=[
        dict(bbox_3d=[x, y, 0.0, 4.0, 2.0, 1.5, 0.0], label=label,
             valid_flag=rest[0] if rest else True) for x, y, label, *rest in gt])


def _pred(rows):
    """Predictions from rows (x, y, label, score)."""
    rows = np.array(rows, dtype=np.float64).reshape(-1, 4)
    boxes = np.zeros((len(rows), 9))
    boxes[:, :2] = rows[:, :2]
    boxes[:, 3:6] = [4.0, 2.0, 1.5]
    return dict(bboxes_3d=boxes, scores_3d=rows[:, 3], labels_3d=rows[:, 2].astype(np.int64))


def test_greedy_match_rules():
    gt_xy = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    gt_labels = np.array([0, 0, 1])
    pred_xy = np.array([[0.5, 0.0],    # car near GT 0: match
                        [0.0, 0.3],    # second car on GT 0, lower score: GT taken -> no match
                        [10.0, 2.5],   # car 2.5 m from GT 1: too far
                        [20.0, 0.0],   # car exactly on the pedestrian GT: class differs
                        [11.0, 1.0]])  # car 1.41 m from GT 1: match
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    is_tp = greedy_centre_match(pred_xy, scores, np.zeros(5, int), gt_xy, gt_labels)
    assert is_tp.tolist() == [True, False, False, False, True]
    # greedy by score: the higher-scoring of two candidates takes the GT even if farther
    is_tp = greedy_centre_match([[1.5, 0.0], [0.1, 0.0]], [0.9, 0.4], [0, 0], [[0.0, 0.0]], [0])
    assert is_tp.tolist() == [True, False]
    # exactly 2 m is not a match (the devkit's strict '<')
    assert not greedy_centre_match([[2.0, 0.0]], [0.5], [0], [[0.0, 0.0]], [0]).any()


def test_threshold_separates_detections_from_noise():
    """3 right detections score high, 2 noise boxes (one > 2 m off, one of the wrong class)
    score low: the threshold lies between them and P = R = F1 = 1."""
    infos = [_info('a', [(5.0, 0.0, 0), (15.0, 3.0, 1)]), _info('b', [(-8.0, 4.0, 0)]),
             _info('c', [])]
    preds = {'a': _pred([(5.3, 0.2, 0, 0.72), (15.0, 3.0, 0, 0.21),   # wrong class
                         (15.1, 2.9, 1, 0.65)]),
             'b': _pred([(-8.0, 4.0, 0, 0.81), (-8.0, 7.0, 0, 0.12)]),  # 3 m off
             'c': _pred([])}
    choice = choose_score_threshold(infos, preds, CLASSES, class_range=NO_RANGE)
    assert 0.21 < choice.threshold <= 0.65
    assert choice.threshold == 0.3  # the shortest decimal in (0.21, 0.65]
    assert (choice.precision, choice.recall, choice.f1) == (1.0, 1.0, 1.0)
    assert (choice.num_tp, choice.num_pred, choice.num_gt, choice.num_samples) == (3, 3, 3, 3)
    assert 'score threshold 0.3 (max F1): precision 1.000, recall 1.000' in choice.summary()
    scores = preds['a']['scores_3d']
    assert select_predictions(scores, choice.threshold, None).tolist() == [0, 2]
    assert select_predictions(scores, choice.threshold, 1).tolist() == [0]


def test_f1_trade_off_and_ties():
    # 0.9 TP, 0.8 FP, 0.7 TP, 0.6 FP, 0.5 FP and 4 GT: F1 0.4 / 0.33 / 0.57 / 0.5 / 0.44
    choice = max_f1_threshold([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 0, 0], num_gt=4)
    assert 0.6 < choice.threshold <= 0.7 and choice.num_pred == 3
    assert choice.precision == pytest.approx(2 / 3) and choice.recall == 0.5
    assert choice.f1 == pytest.approx(4 / 7)
    # tied scores enter together: at 0.5 a TP and an FP (F1 0.5), at 0.4 both TPs (F1 0.8)
    choice = max_f1_threshold([0.5, 0.5, 0.4], [True, False, True], num_gt=2)
    assert choice.threshold == 0.1 and choice.num_tp == 2 and choice.num_pred == 3


def test_class_range_and_points_as_the_devkit_counts():
    """GT beyond the devkit's class range (car 50 m, pedestrian 40 m) or without LiDAR / radar
    points does not count, nor does a prediction beyond the range; an identity lidar2ego."""
    infos = [dict(_info('a', [(30.0, 0.0, 0), (45.0, 0.0, 1), (60.0, 0.0, 0),
                              (0.0, 10.0, 0, False)]), lidar2ego=np.eye(4))]
    preds = {'a': _pred([(30.0, 0.0, 0, 0.9), (45.0, 0.0, 1, 0.8), (60.0, 0.0, 0, 0.7)])}
    choice = choose_score_threshold(infos, preds, CLASSES)
    assert (choice.num_gt, choice.num_tp, choice.num_pred) == (1, 1, 1)


def test_no_match_says_so_and_draws_only_best_guesses():
    infos = [_info('a', [(5.0, 0.0, 0)])]
    preds = {'a': _pred([(9.0, 0.0, 0, 0.4), (5.0, 0.0, 1, 0.3), (0.0, 0.0, 0, 0.2)])}
    choice = choose_score_threshold(infos, preds, CLASSES, class_range=NO_RANGE)
    assert choice.threshold is None and choice.f1 == 0.0
    assert (choice.num_pred, choice.num_gt) == (3, 1)
    assert choice.summary().startswith('no prediction matches the ground truth')
    assert 'the model has not learned yet' in choice.summary()
    scores = preds['a']['scores_3d']
    assert select_predictions(scores, None, 2).tolist() == [0, 1]
    assert select_predictions(scores, None, None).tolist() == []
    # no predictions at all: no threshold either
    assert choose_score_threshold(infos, {}, CLASSES).threshold is None


def _devkit_boxes(token, xy, labels, scores=None):
    from nuscenes.eval.detection.data_classes import DetectionBox
    return [DetectionBox(sample_token=token, translation=(x, y, 0.0), size=(2.0, 4.0, 1.5),
                         rotation=(1.0, 0.0, 0.0, 0.0), detection_name=CLASSES[label],
                         detection_score=-1.0 if scores is None else float(scores[i]))
            for i, ((x, y), label) in enumerate(zip(xy.tolist(), labels.tolist()))]


def test_matching_gives_the_devkits_curve():
    """The devkit's accumulate() on the same boxes: its interpolated precision / confidence
    curves per class are what our true-positive flags give."""
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.utils import center_distance
    from nuscenes.eval.detection.algo import accumulate

    rng = np.random.default_rng(0)
    gts, preds = EvalBoxes(), EvalBoxes()
    scores, is_tp, labels, gt_labels = [], [], [], []
    for token in ('s0', 's1', 's2', 's3'):
        gt_xy, gt_lab = rng.uniform(-20, 20, (6, 2)), rng.integers(0, 2, 6)
        pred_xy = np.concatenate([gt_xy + rng.normal(0, 1.2, gt_xy.shape),
                                  rng.uniform(-20, 20, (4, 2))])
        pred_lab, pred_scores = rng.integers(0, 2, 10), rng.uniform(0, 1, 10)
        gts.add_boxes(token, _devkit_boxes(token, gt_xy, gt_lab))
        preds.add_boxes(token, _devkit_boxes(token, pred_xy, pred_lab, pred_scores))
        is_tp.append(greedy_centre_match(pred_xy, pred_scores, pred_lab, gt_xy, gt_lab))
        scores.append(pred_scores)
        labels.append(pred_lab)
        gt_labels.append(gt_lab)
    scores, is_tp, labels, gt_labels = map(np.concatenate, (scores, is_tp, labels, gt_labels))
    assert 0 < is_tp.sum() < len(is_tp)
    grid = np.linspace(0, 1, 101)  # the devkit's recall grid
    for c, name in enumerate(CLASSES):
        devkit = accumulate(gts, preds, name, center_distance, 2.0)
        order = np.argsort(-scores[labels == c])
        tp = np.cumsum(is_tp[labels == c][order])
        prec = tp / np.arange(1, len(tp) + 1)
        rec = tp / float((gt_labels == c).sum())
        np.testing.assert_allclose(devkit.precision, np.interp(grid, rec, prec, right=0))
        np.testing.assert_allclose(devkit.confidence,
                                   np.interp(grid, rec, scores[labels == c][order], right=0))
