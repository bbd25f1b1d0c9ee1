"""Read a predictions file for visualisation.

The file is what ``tools/test.py CONFIG CKPT --out results.pkl`` writes (mmengine's
``DumpResults``): a pickle of a **list of dicts, one per sample** (any order), each being a
``Det3DDataSample.to_dict()``:

```
{'token': str,                       # the nuScenes sample token (metainfo)
 'pred_instances_3d': {              # also accepted under '_pred_instances_3d'
     'bboxes_3d': (M, 9) or (M, 7)   # LiDAR frame, (x, y, z_bottom, l, w, h, yaw[, vx, vy])
     'scores_3d': (M,),
     'labels_3d': (M,)},             # class index (docs/data_format.md order)
 ...}                                # other metainfo keys are ignored
```
A flat form ``{'token', 'bboxes_3d', 'scores_3d', 'labels_3d'}`` is accepted too. Arrays may
be numpy arrays, torch Tensors or lists.

The file is read with the restricted unpickler of ``projects/common/safe_pickle.py``: plain
data, numpy arrays, tensors and mmengine data samples load; anything else is refused with
the file's name and nothing in it runs.
"""
from typing import Dict

import numpy as np

from projects.common import safe_pickle_load

_PRED_KEYS = ('bboxes_3d', 'scores_3d', 'labels_3d')


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def load_predictions(path: str) -> Dict[str, Dict[str, np.ndarray]]:
    """Load a predictions pickle (format in the module docstring).

    Args:
        path (str): the ``--out`` pickle.

    Returns:
        dict: token -> ``{'bboxes_3d': (M, 9|7) float64, 'scores_3d': (M,) float64,
        'labels_3d': (M,) int64}``.

    Raises:
        FileNotFoundError: no such file. ValueError: an entry misses a key (index named).
        projects.common.UnsafePickleError: the file pickles something other than data.
    """
    import os.path as osp
    if not osp.isfile(path):
        raise FileNotFoundError(f'load_predictions: no such file: {path}')
    results = safe_pickle_load(path)
    if not isinstance(results, (list, tuple)):
        raise ValueError(f'{path}: expected a list of per-sample dicts, got '
                         f'{type(results).__name__}')
    out = {}
    for i, entry in enumerate(results):
        if hasattr(entry, 'to_dict'):  # a data sample pickled as such (mmengine structures)
            entry = entry.to_dict()
        if not isinstance(entry, dict) or 'token' not in entry:
            raise ValueError(f'{path}: entry {i} has no "token" key')
        pred = entry.get('pred_instances_3d', entry.get('_pred_instances_3d', entry))
        missing = [k for k in _PRED_KEYS if k not in pred]
        if missing:
            raise ValueError(f'{path}: entry {i} (token {entry["token"]}) misses {missing} '
                             f'(expected pred_instances_3d with {list(_PRED_KEYS)})')
        boxes = _to_numpy(pred['bboxes_3d']).astype(np.float64)
        if boxes.ndim != 2 or boxes.shape[1] < 7:
            raise ValueError(f'{path}: entry {i} (token {entry["token"]}) bboxes_3d must be '
                             f'(M, >=7), got {boxes.shape}')
        out[entry['token']] = dict(bboxes_3d=boxes,
                                   scores_3d=_to_numpy(pred['scores_3d']).astype(np.float64),
                                   labels_3d=_to_numpy(pred['labels_3d']).astype(np.int64))
    return out
