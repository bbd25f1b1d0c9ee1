"""nuScenes detection metric: our LiDAR-frame predictions -> official submission -> devkit.

``process()`` converts each sample's predictions to submission boxes in the global frame
(using the sample's ``lidar2ego`` and ``ego2global``); ``compute_metrics()`` writes the
submission JSON and runs the official ``DetectionEval`` (mAP, NDS, TP errors, per class).

What can be checked before inference is checked when the evaluator learns the dataset
(``dataset_meta``, set by mmengine's test / val loop at start-up): the dataroot holds the
evaluator's version, the eval set has scenes there, the dataset's info file is of the same
version, and its samples belong to the eval set. Samples whose predictions are NaN / inf
are reported by token: a warning at the first one, an error (naming them) before the devkit
runs, after the submission JSON is written.
"""
import json
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement

from mmdet.registry import METRICS
from projects.bevformer.constants import CLASSES
from projects.bevformer.geometry.boxes import lidar_boxes_to_global

EVAL_SETS = {'v1.0-mini': 'mini_val', 'v1.0-trainval': 'val'}
# Attribute of a box by class when its speed is at most 0.2 m/s (moving boxes: see
# ``default_attribute``), the choice mmdet3d / BEVFormer make.
_STATIC_ATTRIBUTE = {
    'car': 'vehicle.parked', 'truck': 'vehicle.parked', 'trailer': 'vehicle.parked',
    'construction_vehicle': 'vehicle.parked', 'bus': 'vehicle.stopped',
    'motorcycle': 'cycle.without_rider', 'bicycle': 'cycle.without_rider',
    'pedestrian': 'pedestrian.standing', 'barrier': '', 'traffic_cone': ''}
_MOVING_ATTRIBUTE = {
    'car': 'vehicle.moving', 'truck': 'vehicle.moving', 'trailer': 'vehicle.moving',
    'construction_vehicle': 'vehicle.moving', 'bus': 'vehicle.moving',
    'motorcycle': 'cycle.with_rider', 'bicycle': 'cycle.with_rider',
    'pedestrian': 'pedestrian.moving', 'barrier': '', 'traffic_cone': ''}
_TP_METRICS = (('trans_err', 'ATE'), ('scale_err', 'ASE'), ('orient_err', 'AOE'),
               ('vel_err', 'AVE'), ('attr_err', 'AAE'))


def default_attribute(name: str, speed: float) -> str:
    """Attribute of a predicted box from its class and speed (m/s)."""
    if not np.isfinite(speed):
        speed = 0.0
    table = _MOVING_ATTRIBUTE if speed > 0.2 else _STATIC_ATTRIBUTE
    return table.get(name, '')


def _get(sample, key: str, default=None):
    """A field of a data sample given as a dict (``to_dict()``) or a data element."""
    if isinstance(sample, BaseDataElement):
        return sample.get(key, default)
    if key in sample:
        return sample[key]
    return sample.get('metainfo', {}).get(key, default)


def _numpy(x) -> np.ndarray:
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def predictions_to_submission(bboxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                              lidar2global: np.ndarray, token: str,
                              classes: Sequence[str] = CLASSES,
                              max_boxes: int = 500) -> List[dict]:
    """One sample's predictions -> submission box dicts (global frame).

    Args:
        bboxes (ndarray): (M, 9) ``(x, y, z_bottom, l, w, h, yaw, vx, vy)`` LiDAR frame
            (or (M, 7): velocity unknown, written as NaN).
        scores (ndarray): (M,). labels (ndarray): (M,) indices into ``classes``.
        lidar2global (ndarray): (4, 4).
        token (str): the sample token.
        max_boxes (int): keep the highest-scoring boxes (the devkit allows 500).
    """
    bboxes = np.asarray(bboxes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if bboxes.ndim != 2 or bboxes.shape[1] not in (7, 9) or len(bboxes) != len(scores) \
            or len(labels) != len(scores):
        raise ValueError(f'sample {token}: pred_instances_3d expected bboxes_3d (M, 9), '
                         f'scores_3d (M,), labels_3d (M,); got {bboxes.shape}, '
                         f'{scores.shape}, {labels.shape}')
    if len(bboxes) == 0:
        return []
    if labels.min() < 0 or labels.max() >= len(classes):
        raise ValueError(f'sample {token}: labels_3d must be in [0, {len(classes)}), got '
                         f'[{labels.min()}, {labels.max()}]')
    order = np.argsort(-scores, kind='stable')[:max_boxes]
    bboxes, scores, labels = bboxes[order], scores[order], labels[order]
    boxes = bboxes.copy()
    boxes[:, 3:6] = np.maximum(boxes[:, 3:6], 1e-3)  # the devkit asserts sizes > 0
    glob = lidar_boxes_to_global(boxes, lidar2global)
    out = []
    for i in range(len(boxes)):
        name = classes[labels[i]]
        vel = glob['velocity'][i]
        out.append(dict(
            sample_token=token, translation=glob['center'][i].tolist(),
            size=glob['size_wlh'][i].tolist(), rotation=glob['rotation'][i].tolist(),
            velocity=vel.tolist(), detection_name=name, detection_score=float(scores[i]),
            attribute_name=default_attribute(name, float(np.hypot(*vel)))))
    return out


@METRICS.register_module()
class NuScenesMetric(BaseMetric):
    """The official nuScenes detection evaluation of our 3D predictions.

    Args:
        data_root (str): the nuScenes dataroot (the devkit loads ``<data_root>/<version>``).
        ann_file (str, optional): the info file of the evaluated split; its tokens are all
            written to the submission (an empty list for samples without predictions).
        version (str): devkit version; the eval set is ``mini_val`` for v1.0-mini and
            ``val`` for v1.0-trainval unless ``eval_set`` is given.
        eval_config (str): devkit detection config name.
        eval_set (str, optional): devkit split to evaluate.
        jsonfile_prefix (str, optional): directory for ``results_nusc.json`` and the devkit's
            output; a temporary directory when not given.
        format_only (bool): only write the submission (e.g. for the test split).
        classes (sequence of str): label index -> detection name.
        max_boxes_per_sample (int): keep the top-scoring boxes per sample.
        collect_device (str): 'cpu' or 'gpu', for collecting results across ranks.
        prefix (str, optional): metric name prefix (default 'NuScenes').
    """
    default_prefix = 'NuScenes'

    def __init__(self, data_root: str, ann_file: Optional[str] = None,
                 version: str = 'v1.0-trainval', eval_config: str = 'detection_cvpr_2019',
                 eval_set: Optional[str] = None, jsonfile_prefix: Optional[str] = None,
                 format_only: bool = False, classes: Sequence[str] = CLASSES,
                 max_boxes_per_sample: int = 500, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if format_only and jsonfile_prefix is None:
            raise ValueError('format_only=True needs jsonfile_prefix (where to keep the '
                             'submission)')
        if eval_set is None and not format_only:
            if version not in EVAL_SETS:
                raise ValueError(f'no default eval_set for version {version!r}; expected one '
                                 f'of {sorted(EVAL_SETS)} or pass eval_set')
            eval_set = EVAL_SETS[version]
        self.data_root, self.ann_file, self.version = data_root, ann_file, version
        self.eval_config, self.eval_set = eval_config, eval_set
        self.jsonfile_prefix, self.format_only = jsonfile_prefix, format_only
        self.classes = tuple(classes)
        self.max_boxes_per_sample = max_boxes_per_sample
        self._nusc = None
        self._nonfinite_tokens: List[str] = []

    # ---------------------------------------------------------------- start-up checks
    @BaseMetric.dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        """Set by the test / val loop before inference: validate what can be validated."""
        self._dataset_meta = dataset_meta
        self.check_setup(dataset_meta)

    def _versions_in_root(self) -> List[str]:
        if not osp.isdir(self.data_root):
            return []
        return sorted(d for d in os.listdir(self.data_root)
                      if d.startswith('v1.0') and osp.isdir(osp.join(self.data_root, d)))

    def _eval_scenes(self) -> List[str]:
        """Scene names of ``eval_set`` (the devkit's splits or ``<version>/splits.json``)."""
        from nuscenes.utils.splits import create_splits_scenes
        splits = create_splits_scenes()
        if self.eval_set in splits:
            return list(splits[self.eval_set])
        custom = osp.join(self.data_root, self.version, 'splits.json')
        if not osp.isfile(custom):
            raise ValueError(f'NuScenesMetric: eval_set {self.eval_set!r} is not a devkit split '
                             f'({sorted(splits)}) and there is no {custom}')
        with open(custom) as f:
            custom_splits = json.load(f)
        if self.eval_set not in custom_splits:
            raise ValueError(f'NuScenesMetric: eval_set {self.eval_set!r} is not in {custom} '
                             f'(it has {sorted(custom_splits)})')
        return list(custom_splits[self.eval_set])

    def check_setup(self, dataset_meta: Optional[dict] = None) -> None:
        """Check the evaluator against the dataroot and the dataset, before inference.

        Raises:
            FileNotFoundError: no ``<data_root>/<version>`` tables.
            ValueError: the dataset's info file is of another version; the eval set has no
                scene in the tables; the info file's samples are not in the eval set.
        """
        if self.format_only:
            return
        tables = osp.join(self.data_root, self.version)
        if not osp.isfile(osp.join(tables, 'scene.json')):
            found = self._versions_in_root()
            raise FileNotFoundError(
                f'NuScenesMetric: no nuScenes tables at {tables} (version={self.version!r}); '
                + (f'{self.data_root} has {found}: set the evaluator\'s version (and eval_set) '
                   f'to match' if found else f'{self.data_root} holds no v1.0-* tables'))
        info_version = (dataset_meta or {}).get('version')
        if info_version is not None and info_version != self.version:
            raise ValueError(f'NuScenesMetric: the evaluated dataset\'s info file is '
                             f'{info_version!r}, the evaluator is {self.version!r} '
                             f'(eval_set {self.eval_set!r}): set test_evaluator.version / '
                             f'val_evaluator.version to {info_version!r}')
        with open(osp.join(tables, 'scene.json')) as f:
            scenes = {s['token']: s['name'] for s in json.load(f)}
        wanted = set(self._eval_scenes())
        present = wanted & set(scenes.values())
        if not present:
            raise ValueError(f'NuScenesMetric: none of the {len(wanted)} scenes of eval_set '
                             f'{self.eval_set!r} is in {tables}/scene.json (it has '
                             f'{len(scenes)} scenes, e.g. {sorted(scenes.values())[:3]}): '
                             f'wrong version / eval_set for this dataroot?')
        if self.ann_file:
            with open(osp.join(tables, 'sample.json')) as f:
                sample_scene = {s['token']: scenes.get(s['scene_token']) for s in json.load(f)}
            tokens = self._ann_tokens()
            outside = [t for t in tokens if sample_scene.get(t) not in wanted]
            if outside:
                raise ValueError(f'NuScenesMetric: {len(outside)} of the {len(tokens)} samples '
                                 f'of {self.ann_file} are not in eval_set {self.eval_set!r} '
                                 f'of {tables} (e.g. {outside[:3]}): an info file of another '
                                 f'split or dataroot?')

    # ------------------------------------------------------------------ per batch
    def process(self, data_batch, data_samples: Sequence) -> None:
        """Convert each sample's ``pred_instances_3d`` to submission boxes (global frame)."""
        for sample in data_samples:
            token = _get(sample, 'token')
            if token is None:
                raise KeyError('data sample has no metainfo key "token"')
            lidar2ego, ego2global = _get(sample, 'lidar2ego'), _get(sample, 'ego2global')
            if lidar2ego is None or ego2global is None:
                raise KeyError(f'sample {token}: metainfo needs "lidar2ego" and "ego2global"')
            lidar2global = np.asarray(ego2global, np.float64) @ np.asarray(lidar2ego, np.float64)
            pred = _get(sample, 'pred_instances_3d')
            if pred is None:
                raise KeyError(f'sample {token}: no "pred_instances_3d"')
            get = pred.get if hasattr(pred, 'get') else (lambda k: getattr(pred, k, None))
            bboxes, scores = _numpy(get('bboxes_3d')), _numpy(get('scores_3d'))
            finite = (np.isfinite(np.asarray(bboxes, np.float64)[..., :7]).all()
                      and np.isfinite(np.asarray(scores, np.float64)).all())
            if not finite:
                if not self._nonfinite_tokens:
                    print_log(f'NuScenesMetric: sample {token} has NaN / inf predicted boxes or '
                              f'scores; the evaluation will stop with the list of such '
                              f'samples once inference ends', logger='current', level=30)
                self._nonfinite_tokens.append(str(token))
                self.results.append(dict(token=token, boxes=[], nonfinite=True))
                continue
            boxes = predictions_to_submission(
                bboxes, scores, _numpy(get('labels_3d')), lidar2global, token, self.classes,
                self.max_boxes_per_sample)
            self.results.append(dict(token=token, boxes=boxes))

    # ---------------------------------------------------------------- evaluation
    def _devkit(self):
        if self._nusc is None:
            from nuscenes import NuScenes
            if not osp.isdir(osp.join(self.data_root, self.version)):
                raise FileNotFoundError(f'no nuScenes tables at '
                                        f'{osp.join(self.data_root, self.version)}')
            self._nusc = NuScenes(version=self.version, dataroot=self.data_root, verbose=False)
        return self._nusc

    def _split_tokens(self) -> List[str]:
        """Sample tokens of the eval set, as the devkit's ``load_gt`` selects them."""
        from nuscenes.utils.splits import get_scenes_of_split
        nusc = self._devkit()
        scenes = set(get_scenes_of_split(self.eval_set, nusc))  # incl. custom splits.json
        return [s['token'] for s in nusc.sample
                if nusc.get('scene', s['scene_token'])['name'] in scenes]

    def _ann_tokens(self) -> List[str]:
        """The sample tokens of ``ann_file`` (read once, with the restricted unpickler)."""
        from projects.common import safe_pickle_load
        cached = getattr(self, '_ann_tokens_cache', None)
        if cached is not None and cached[0] == self.ann_file:
            return cached[1]
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'ann_file not found: {self.ann_file}')
        data = safe_pickle_load(self.ann_file)
        if not isinstance(data, dict) or 'data_list' not in data:
            raise KeyError(f'{self.ann_file}: expected a dict with "data_list"')
        tokens = [info['token'] for info in data['data_list']]
        self._ann_tokens_cache = (self.ann_file, tokens)
        return tokens

    def format_results(self, results: List[dict], out_dir: str) -> str:
        """Write ``<out_dir>/results_nusc.json``; returns its path."""
        import mmengine
        submission: Dict[str, List[dict]] = {}
        for res in results:  # samplers may pad with repeated samples: keep the first
            submission.setdefault(res['token'], res['boxes'])
        tokens = self._ann_tokens() if self.ann_file else []
        if not self.format_only:
            expected = self._split_tokens()
            extra = set(submission) - set(expected)
            if extra:
                raise ValueError(f'{len(extra)} predicted sample tokens are not in eval set '
                                 f'{self.eval_set!r} of {self.data_root}/{self.version}, '
                                 f'e.g. {sorted(extra)[:3]}')
            tokens = expected
        missing = [t for t in tokens if t not in submission]
        if missing and not self.format_only:
            print_log(f'NuScenesMetric: {len(missing)} of {len(tokens)} samples of '
                      f'{self.eval_set} have no predictions; they count as empty',
                      logger='current')
        for t in missing:
            submission[t] = []
        path = osp.join(out_dir, 'results_nusc.json')
        mmengine.mkdir_or_exist(out_dir)
        mmengine.dump(dict(meta=dict(use_camera=True, use_lidar=False, use_radar=False,
                                     use_map=False, use_external=False),
                           results=submission), path)
        return path

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        tmp = None
        out_dir = self.jsonfile_prefix
        if out_dir is None:
            tmp = tempfile.TemporaryDirectory()
            out_dir = tmp.name
        try:
            path = self.format_results(results, out_dir)
            nonfinite = sorted({r['token'] for r in results if r.get('nonfinite')})
            if nonfinite:
                raise ValueError(
                    f'NuScenesMetric: {len(nonfinite)} of {len(results)} samples have NaN / '
                    f'inf predicted boxes or scores, which the devkit cannot evaluate: '
                    f'{", ".join(nonfinite[:10])}' + (' ...' if len(nonfinite) > 10 else '')
                    + f' (submission without them: {path})')
            if self.format_only:
                print_log(f'NuScenesMetric: submission written to {path}', logger='current')
                return {}
            return self._evaluate(path, out_dir)
        finally:
            if tmp is not None:
                tmp.cleanup()

    def _evaluate(self, result_path: str, out_dir: str) -> Dict[str, float]:
        import mmengine
        from nuscenes.eval.common.config import config_factory
        from nuscenes.eval.detection.evaluate import DetectionEval

        num_boxes = sum(len(v) for v in mmengine.load(result_path)['results'].values())
        if num_boxes == 0:  # the devkit cannot evaluate an empty submission
            print_log('NuScenesMetric: no predicted boxes at all; reporting zeros',
                      logger='current', level=30)
            return self._empty_metrics()
        evaluator = DetectionEval(self._devkit(), config=config_factory(self.eval_config),
                                  result_path=result_path, eval_set=self.eval_set,
                                  output_dir=out_dir, verbose=False)
        summary = evaluator.main(plot_examples=0, render_curves=False)
        return self._summarise(summary)

    def _empty_metrics(self) -> Dict[str, float]:
        metrics = {'mAP': 0.0, 'NDS': 0.0}
        for _, short in _TP_METRICS:
            metrics[f'm{short}'] = 1.0
        for name in CLASSES:
            metrics[f'{name}_AP'] = 0.0
        return metrics

    def _summarise(self, summary: dict) -> Dict[str, float]:
        metrics = {'mAP': float(summary['mean_ap']), 'NDS': float(summary['nd_score'])}
        for key, short in _TP_METRICS:
            metrics[f'm{short}'] = float(summary['tp_errors'][key])
        rows = [['class', 'AP'] + [s for _, s in _TP_METRICS]]
        for name, aps in summary['label_aps'].items():
            ap = float(np.mean(list(aps.values())))
            metrics[f'{name}_AP'] = ap
            for th, value in aps.items():
                metrics[f'{name}_AP_dist_{float(th)}'] = float(value)
            errs = summary['label_tp_errors'][name]
            for key, short in _TP_METRICS:
                metrics[f'{name}_{short}'] = float(errs[key])
            rows.append([name, f'{ap:.4f}'] + [f'{float(errs[k]):.4f}' for k, _ in _TP_METRICS])
        rows.append(['mean', f'{metrics["mAP"]:.4f}'] +
                    [f'{metrics["m" + s]:.4f}' for _, s in _TP_METRICS])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [' | '.join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        lines.insert(1, '-+-'.join('-' * w for w in widths))
        print_log(f'nuScenes detection ({self.eval_set}):\n' + '\n'.join(lines) +
                  f'\nmAP: {metrics["mAP"]:.4f}  NDS: {metrics["NDS"]:.4f}', logger='current')
        return metrics
