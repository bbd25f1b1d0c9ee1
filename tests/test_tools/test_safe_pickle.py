"""Info and result pickles load without executing anything: crafted files through ann_file
(the dataset), --pred (tools/analysis/visualize.py) and the metric are refused with the
file's name; the files our tools write still load."""
import io
import os
import pickle

import mmengine
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

import projects.common  # noqa: F401
from projects.common import UnsafePickleError, safe_pickle_load
from tests.test_tools.conftest import load_tool


class _System:
    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class _Getattr:
    def __reduce__(self):
        return (getattr, (np.ndarray, 'tofile'))


class _Codec:
    def __reduce__(self):
        import _codecs
        return (_codecs.encode, ('x', 'rot13'))


class _EvilStorage:
    """A tensor storage whose inner torch.save holds a payload (torch's own _load_from_bytes
    would load it with weights_only=False)."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        buf = io.BytesIO()
        torch.save(_System(self.marker), buf, _use_new_zipfile_serialization=False)
        return (torch.storage._load_from_bytes, (buf.getvalue(), ))


def _crafted(tmp_path, kind: str, wrap) -> tuple:
    marker = tmp_path / f'pwned_{kind}'
    payload = {'system': lambda: _System(marker), 'getattr': _Getattr, 'codec': _Codec,
               'storage': lambda: _EvilStorage(marker)}[kind]()
    path = tmp_path / f'crafted_{kind}.pkl'
    with open(path, 'wb') as f:
        pickle.dump(wrap(payload), f, protocol=2)
    return str(path), marker


def _info_file(payload):
    return {'metainfo': {'version': 'v1.0-mini'}, 'data_list': [{'token': 't', 'x': payload}]}


@pytest.mark.parametrize('kind', ['system', 'getattr', 'codec', 'storage'])
def test_crafted_pickles_are_refused_with_the_file_name(tmp_path, kind):
    path, marker = _crafted(tmp_path, kind, _info_file)
    with pytest.raises(UnsafePickleError, match=f'crafted_{kind}.pkl'):
        safe_pickle_load(path)
    # mmengine.load (what BaseDataset uses for ann_file) goes through the same unpickler
    with pytest.raises(UnsafePickleError, match=f'crafted_{kind}.pkl: refusing to load'):
        mmengine.load(path)
    assert not marker.exists()


def test_crafted_ann_file_through_the_dataset(tmp_path, tiny_config):
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope
    path, marker = _crafted(tmp_path, 'system', _info_file)
    cfg = Config.fromfile(tiny_config).test_dataloader.dataset
    cfg.ann_file = path
    with pytest.raises(Exception, match=r'crafted_system.pkl.*posix.system'), \
            DefaultScope.overwrite_default_scope('mmdet'):
        DATASETS.build(cfg).full_init()
    assert not marker.exists()


def test_crafted_pred_file_through_visualize(tmp_path, tiny_root):
    path, marker = _crafted(tmp_path, 'system', lambda p: [{'token': 't', 'x': p}])
    visualize = load_tool('tools/analysis/visualize.py')
    with pytest.raises(UnsafePickleError, match='crafted_system.pkl'):
        visualize.main(['--info', f'{tiny_root}/nuscenes_infos_val.pkl', '--data-root',
                        tiny_root, '--out-dir', str(tmp_path / 'vis'), '--pred', path])
    assert not marker.exists()


def test_crafted_ann_file_through_the_metric(tmp_path, tiny_root):
    from projects.bevformer.evaluation import NuScenesMetric
    path, marker = _crafted(tmp_path, 'system', _info_file)
    metric = NuScenesMetric(data_root=tiny_root, ann_file=path, version='v1.0-mini')
    with pytest.raises(UnsafePickleError, match='crafted_system.pkl'):
        metric.dataset_meta = {'version': 'v1.0-mini'}  # the start-up check reads ann_file
    assert not marker.exists()


def test_our_own_info_and_result_files_load(tiny_root, tmp_path):
    from projects.bevformer.structures import Det3DDataSample
    from projects.bevformer.visualization.predictions import load_predictions

    # tools/create_data.py's info file: identical to what plain pickle gives
    info = f'{tiny_root}/nuscenes_infos_val.pkl'
    with open(info, 'rb') as f:
        plain = pickle.load(f)
    safe = safe_pickle_load(info)
    assert safe['metainfo'] == plain['metainfo'] and len(safe['data_list']) == 4
    first, ref = safe['data_list'][0], plain['data_list'][0]
    assert np.array_equal(first['ego2global'], ref['ego2global'])

    # tools/test.py --out: Det3DDataSample.to_dict() with tensors (DumpResults), and samples
    # pickled as data structures (InstanceData inside) are both read
    sample = Det3DDataSample(metainfo=dict(token='tok', lidar2ego=np.eye(4),
                                           img_shape=[(32, 48)] * 6))
    sample.pred_instances_3d = InstanceData(bboxes_3d=torch.rand(3, 9),
                                            scores_3d=torch.rand(3),
                                            labels_3d=torch.tensor([0, 1, 2]))
    for name, content in (('dicts.pkl', [sample.to_dict()]), ('samples.pkl', [sample])):
        path = str(tmp_path / name)
        mmengine.dump(content, path)
        preds = load_predictions(path)
        assert preds['tok']['bboxes_3d'].shape == (3, 9)
        np.testing.assert_array_equal(preds['tok']['labels_3d'], [0, 1, 2])
