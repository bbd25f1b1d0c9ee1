"""tools/dataset_converters/foreign_infos.py and convert_infos.py: info files written the way the
original BEVFormer and mmdet3d 1.x write them (tests/test_tools/foreign_info_writers.py, from the
same synthetic dataroot) convert to exactly what our tools/create_data.py makes of that dataroot:
keys, matrices, boxes in our convention, labels in our class order, velocities (NaN included),
can_bus, frame order."""
import os.path as osp
import pickle
import shutil
import json

import mmengine
import numpy as np
import pytest

from projects.bevformer.geometry.boxes import limit_angle
from projects.common.safe_pickle import UnsafePickleError
from tests.test_tools.conftest import load_tool
from tests.test_tools.foreign_info_writers import write_bevformer_infos, write_mmdet3d_v2_infos
from tools.dataset_converters.foreign_infos import (ForeignInfoError, convert_bevformer_infos,
                                                    convert_info_file, convert_mmdet3d_v2_infos,
                                                    load_pickle, relative_data_path)
from tools.dataset_converters.nuscenes_converter import create_nuscenes_infos

VERSION = 'v1.0-mini'


def _patch_tables(root: str) -> None:
    """Give the dataroot what the synthetic one lacks: an annotation without velocity (no
    prev / next: the devkit says NaN) and an instance of a category outside the 10 classes."""
    table = osp.join(root, VERSION)
    with open(osp.join(table, 'sample_annotation.json')) as f:
        anns = json.load(f)
    with open(osp.join(table, 'instance.json')) as f:
        instances = json.load(f)
    with open(osp.join(table, 'category.json')) as f:
        police = next(c['token'] for c in json.load(f) if c['name'] == 'vehicle.emergency.police')
    lone = next(a for a in anns if a['prev'] and a['next'])
    lone['prev'] = lone['next'] = ''
    instances[-1]['category_token'] = police
    for name, rows in (('sample_annotation', anns), ('instance', instances)):
        with open(osp.join(table, f'{name}.json'), 'w') as f:
            json.dump(rows, f)


@pytest.fixture(scope='module')
def foreign(tiny_root, tmp_path_factory):
    """(root, ours {split: data}, bevformer {split: path}, mmdet3d-v2 {split: path})."""
    root = str(tmp_path_factory.mktemp('foreign') / 'nuscenes')
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns('*.pkl'))
    _patch_tables(root)
    ours = {k: mmengine.load(p) for k, p in create_nuscenes_infos(
        root, root, version=VERSION, progress=False).items()}
    out = osp.join(root, 'foreign')
    mmengine.mkdir_or_exist(out)
    return (root, ours, write_bevformer_infos(root, out, VERSION),
            write_mmdet3d_v2_infos(root, out, VERSION))


def assert_same_infos(conv: dict, ours: dict, skip=()) -> None:
    """Field by field; ``skip``: keys (``'scene_name'``, ``'can_bus_can'``, ...) not compared."""
    assert conv['metainfo'] == ours['metainfo']
    if 'order' not in skip:
        assert [i['token'] for i in conv['data_list']] == [i['token'] for i in ours['data_list']]
    by_token = {i['token']: i for i in conv['data_list']}
    assert set(by_token) == {i['token'] for i in ours['data_list']}
    for o in ours['data_list']:
        c = by_token[o['token']]
        assert set(c) == set(o)
        for key in ('token', 'scene_token', 'scene_name', 'timestamp', 'prev', 'next',
                    'frame_idx', 'lidar_path'):
            if key not in skip:
                assert c[key] == o[key] and type(c[key]) is type(o[key]), (key, c[key], o[key])
        for key in ('lidar2ego', 'ego2global'):
            assert c[key].shape == (4, 4) and c[key].dtype == np.float64
            np.testing.assert_allclose(c[key], o[key], rtol=0, atol=1e-6)
        assert c['can_bus'].shape == (18, )
        np.testing.assert_allclose(c['can_bus'][:7], o['can_bus'][:7], atol=1e-9)
        np.testing.assert_allclose(c['can_bus'][16:], o['can_bus'][16:], atol=1e-9)
        if 'can_bus_can' not in skip:
            np.testing.assert_allclose(c['can_bus'][7:16], o['can_bus'][7:16], atol=1e-9)
        assert list(c['cams']) == list(o['cams'])
        for cam, oc in o['cams'].items():
            cc = c['cams'][cam]
            assert set(cc) == set(oc), cam
            for key in ('img_path', 'sample_data_token', 'timestamp', 'width', 'height'):
                if key not in skip:
                    assert cc[key] == oc[key] and type(cc[key]) is type(oc[key]), (cam, key)
            for key in ('cam2img', 'cam2ego', 'ego2global', 'lidar2cam', 'lidar2img'):
                assert cc[key].shape == oc[key].shape and cc[key].dtype == np.float64
                np.testing.assert_allclose(cc[key], oc[key], rtol=1e-9, atol=1e-6,
                                           err_msg=f'{cam} {key}')
        assert len(c['instances']) == len(o['instances'])
        for ci, oi in zip(c['instances'], o['instances']):
            assert set(ci) == set(oi)
            box_c, box_o = np.array(ci['bbox_3d']), np.array(oi['bbox_3d'])
            assert box_c.shape == (7, )
            np.testing.assert_allclose(box_c[:6], box_o[:6], atol=1e-6)
            # (without the tables the file's yaw stays: second order in the box's tilt)
            tol = 1e-3 if 'exact_yaw' in skip else 1e-9
            assert abs(limit_angle(box_c[6] - box_o[6])) < tol
            np.testing.assert_allclose(ci['velocity'], oi['velocity'], atol=1e-6)  # NaN == NaN
            for key in ('label', 'name', 'attribute', 'instance_token', 'num_lidar_pts',
                        'num_radar_pts', 'valid_flag'):
                if key not in skip:
                    assert ci[key] == oi[key] and type(ci[key]) is type(oi[key]), key


def test_fixture_has_the_hard_cases(foreign):
    _, ours, _, _ = foreign
    insts = [i for d in ours.values() for s in d['data_list'] for i in s['instances']]
    assert any(np.isnan(i['velocity']).all() for i in insts)
    assert any(i['label'] == -1 and i['name'] == 'vehicle.emergency.police' for i in insts)
    assert any(not i['valid_flag'] for i in insts)
    assert {i['name'] for i in insts if i['label'] >= 0} & {'trailer', 'barrier', 'bicycle'}


def test_bevformer_infos_equal_ours(foreign):
    root, ours, bevformer, _ = foreign
    for split, path in bevformer.items():
        raw = load_pickle(path)
        # read anew from the CAN bus expansion: equal to create_data.py in every field
        assert_same_infos(convert_bevformer_infos(raw, root, can_bus_root=root), ours[split])
        # by default the file's CAN values are kept (the original's message after the key
        # frame); the pose part and the yaw come from the ego pose
        conv = convert_bevformer_infos(raw, root)
        assert_same_infos(conv, ours[split], skip=('can_bus_can', ))
        file_can = {i['token']: i['can_bus'] for i in raw['infos']}
        for info in conv['data_list']:
            np.testing.assert_array_equal(info['can_bus'][7:16], file_can[info['token']][7:16])


def test_bevformer_infos_without_tables(foreign, recwarn):
    """No tables: the scene token names the scene, image sizes are read from the files (or
    are nuScenes' 1600 x 900 without a dataroot), tokens and attributes are empty."""
    root, ours, bevformer, _ = foreign
    raw = load_pickle(bevformer['val'])
    raw['metadata']['version'] = 'v1.0-trainval'  # no such tables in the dataroot
    conv = convert_bevformer_infos(raw, root)
    assert any('no nuScenes tables' in str(w.message) for w in recwarn)
    ours_val = dict(ours['val'], metainfo=dict(ours['val']['metainfo'], version='v1.0-trainval'))
    assert_same_infos(conv, ours_val, skip=('scene_name', 'order', 'can_bus_can', 'attribute',
                                            'instance_token', 'exact_yaw'))
    for info in conv['data_list']:
        assert info['scene_name'] == info['scene_token']
        assert all(i['instance_token'] == '' and i['attribute'] == '' for i in info['instances'])
    conv = convert_bevformer_infos(raw, None)
    cam = conv['data_list'][0]['cams']['CAM_FRONT']
    assert (cam['height'], cam['width']) == (900, 1600)
    assert cam['img_path'].startswith('samples/CAM_FRONT/')
    # a test split has no gt_boxes
    for info in raw['infos']:
        for key in ('gt_boxes', 'gt_names', 'gt_velocity', 'num_lidar_pts', 'num_radar_pts',
                    'valid_flag'):
            del info[key]
    assert all(i['instances'] == [] for i in convert_bevformer_infos(raw, None)['data_list'])


def test_mmdet3d_v2_infos_equal_ours(foreign):
    root, ours, _, v2 = foreign
    for split, path in v2.items():
        raw = load_pickle(path)
        assert_same_infos(convert_mmdet3d_v2_infos(raw, root), ours[split])
    # the two projects number the classes differently: the converter goes by name
    raw = load_pickle(v2['train'])
    file_labels = [i['bbox_label_3d'] for s in raw['data_list'] for i in s['instances']]
    ours_labels = [i['label'] for s in ours['train']['data_list'] for i in s['instances']]
    assert file_labels != ours_labels


def test_mmdet3d_v2_needs_the_matching_dataroot(foreign):
    root, _, _, v2 = foreign
    raw = load_pickle(v2['val'])
    with pytest.raises(ValueError, match='need --data-root'):
        convert_mmdet3d_v2_infos(raw, None)
    raw['data_list'][1]['ego2global'][0][3] += 0.5  # a pose from another dataroot
    with pytest.raises(ForeignInfoError, match=r'sample 1 \(token \w+\): ego2global differs'):
        convert_mmdet3d_v2_infos(raw, root)
    raw = load_pickle(v2['val'])
    raw['data_list'][0]['instances'].pop()
    with pytest.raises(ForeignInfoError, match='5 instances but 6 annotations'):
        convert_mmdet3d_v2_infos(raw, root)


def test_convert_infos_cli(foreign, tmp_path):
    root, ours, bevformer, v2 = foreign
    tool = load_tool('tools/dataset_converters/convert_infos.py')
    dst = str(tmp_path / 'ours_from_v2.pkl')
    tool.main([v2['val'], dst, '--data-root', root])  # --format auto
    assert_same_infos(mmengine.load(dst), ours['val'])
    dst = str(tmp_path / 'ours_from_bevformer.pkl')
    tool.main([bevformer['train'], dst, '--format', 'bevformer', '--data-root', root,
               '--can-bus-root', root])
    assert_same_infos(mmengine.load(dst), ours['train'])
    # our dataset reads it
    from projects.bevformer.datasets import NuScenesBEVDataset
    ds = NuScenesBEVDataset(ann_file=dst, data_root=root, pipeline=[], test_mode=True)
    assert len(ds) == len(ours['train']['data_list'])
    with pytest.raises(ForeignInfoError, match='laid out as bevformer'):
        tool.main([bevformer['val'], dst, '--format', 'mmdet3d-v2', '--data-root', root])
    with pytest.raises(ForeignInfoError, match='already in our format'):
        convert_info_file(osp.join(root, 'nuscenes_infos_val.pkl'))


def test_unsafe_pickle_is_refused(tmp_path):
    path = str(tmp_path / 'evil.pkl')
    with open(path, 'wb') as f:
        pickle.dump({'infos': [shutil.rmtree], 'metadata': {}}, f)
    with pytest.raises(UnsafePickleError, match='shutil'):
        convert_info_file(path)


def test_relative_data_path():
    assert relative_data_path('./data/nuscenes/samples/CAM_FRONT/a.jpg') == \
        'samples/CAM_FRONT/a.jpg'
    assert relative_data_path('/x/samples/nuscenes/sweeps/LIDAR_TOP/b.bin') == \
        'sweeps/LIDAR_TOP/b.bin'
    assert relative_data_path('/d/root/imgs/a.jpg', '/d/root') == 'imgs/a.jpg'
    with pytest.raises(ForeignInfoError, match='relative'):
        relative_data_path('/elsewhere/a.jpg', '/d/root')
