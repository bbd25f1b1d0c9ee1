"""Bad data is named at the data boundary (info file, image) instead of training into NaN:
non-finite / degenerate poses, calibration and can_bus, boxes of zero size, truncated images,
empty or unreadable info files; ``skip_invalid`` drops such frames and counts them."""
import os.path as osp
import warnings

import mmengine
import numpy as np
import pytest
import torch

from projects.bevformer.datasets import InfoFormatError, NuScenesBEVDataset
from projects.bevformer.datasets.validation import (check_boxes, check_pose,
                                                    check_projection)

from tests.test_bevformer.bev_data_helpers import write_infos, write_synthetic_infos

PIPELINE = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='FilterBEVInstances', point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]),
    dict(type='PackBEVInputs'),
]


@pytest.fixture(scope='module')
def synth_bad(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synth_bad'))
    return root, write_synthetic_infos(root, (3, 2))


def _broken(synth_bad, tmp_path, edit, name='bad.pkl'):
    root, path = synth_bad
    infos = mmengine.load(path)
    edit(infos['data_list'])
    return root, write_infos(infos, str(tmp_path / name))


def _dataset(root, path, **kw):
    return NuScenesBEVDataset(ann_file=path, data_root=root, pipeline=PIPELINE, **kw)


def _set_cam(key, value, cam='CAM_BACK'):
    def edit(data_list):
        data_list[1]['cams'][cam][key] = value
    return edit


CASES = {
    'nan can_bus': (lambda dl: dl[1]['can_bus'].__setitem__(4, np.nan),
                    r"sample 1 \(token s0f1\): can_bus has non-finite values at \[4\]"),
    'nan ego2global': (lambda dl: dl[1]['ego2global'].__setitem__((0, 3), np.nan),
                       r'token s0f1\): ego2global has non-finite values'),
    'zero lidar2ego': (lambda dl: dl[1].__setitem__('lidar2ego', np.zeros((4, 4))),
                       r'token s0f1\): lidar2ego last row .*lidar2ego rotation is not a rotation'),
    'singular lidar2img': (_set_cam('lidar2img', np.zeros((4, 4))),
                           r'cams.CAM_BACK.lidar2img is singular'),
    'nan lidar2img': (_set_cam('lidar2img', np.full((4, 4), np.nan)),
                      r'cams.CAM_BACK.lidar2img has non-finite values'),
    'zero focal length': (_set_cam('cam2img', np.diag([0.0, 0.0, 1.0])),
                          r'cams.CAM_BACK.cam2img focal lengths must be > 0'),
    'zero-size box': (lambda dl: dl[1]['instances'][0].__setitem__(
        'bbox_3d', [1.0, 2.0, -1.0, 0.0, 1.8, 1.5, 0.1]),
        r'instances\[0\].bbox_3d size \(l, w, h\) must be > 0'),
    'nan box centre': (lambda dl: dl[1]['instances'][0].__setitem__(
        'bbox_3d', [np.nan, 2.0, -1.0, 4.0, 1.8, 1.5, 0.1]),
        r'instances\[0\].bbox_3d has non-finite values'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_invalid_frame_is_named_or_skipped(synth_bad, tmp_path, case):
    edit, message = CASES[case]
    root, path = _broken(synth_bad, tmp_path, edit)
    with pytest.raises(InfoFormatError, match=message) as err:
        len(_dataset(root, path, test_mode=True))
    assert 'bad.pkl' in str(err.value)
    with pytest.warns(UserWarning, match=r'skip_invalid dropped 1 of 5 frames'):
        ds = _dataset(root, path, test_mode=True, skip_invalid=True)
        assert len(ds) == 4
    assert [token for token, _ in ds.skipped] == ['s0f1']
    assert all(ds[i]['data_samples'].token != 's0f1' for i in range(len(ds)))


def test_unknown_velocity_is_allowed(synth_bad, tmp_path):
    def edit(data_list):
        data_list[1]['instances'][0]['velocity'] = [np.nan, np.nan]
    root, path = _broken(synth_bad, tmp_path, edit)
    ds = _dataset(root, path, test_mode=True)
    boxes = ds[1]['data_samples'].gt_instances_3d.bboxes_3d
    assert torch.isnan(boxes[:, 7:]).any() and torch.isfinite(boxes[:, :7]).all()


def test_unreadable_empty_and_emptied_info_files_are_named(synth_bad, tmp_path):
    root, path = synth_bad
    truncated = str(tmp_path / 'truncated.pkl')
    with open(path, 'rb') as f:
        data = f.read()
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(InfoFormatError, match=r'truncated.pkl: cannot read the info file'):
        len(_dataset(root, truncated))
    empty = write_infos(dict(mmengine.load(path), data_list=[]), str(tmp_path / 'empty.pkl'))
    with pytest.raises(InfoFormatError, match=r'empty.pkl: data_list is empty'):
        len(_dataset(root, empty))
    # No box of a kept class anywhere: filter_empty_gt would leave nothing to train on.
    nothing = _dataset(root, path, metainfo=dict(classes=['not_a_class']), lazy_init=True)
    with pytest.raises(InfoFormatError, match=r"no frame has a valid box of the classes "
                                              r"\['not_a_class'\]"):
        nothing.full_init()


def _truncate_image(root, path, token='s0f1', cam='CAM_FRONT'):
    rel = [c for c in mmengine.load(path)['data_list'][1]['cams'].values()
           if c['img_path'].endswith(f'{cam}/{token}.jpg')][0]['img_path']
    full = osp.join(root, rel)
    with open(full, 'rb') as f:
        data = f.read()
    with open(full, 'wb') as f:
        f.write(data[:len(data) * 2 // 3])
    return full


def test_truncated_image_is_named_and_skipped_in_training(tmp_path):
    root = str(tmp_path)
    path = write_synthetic_infos(root, (3, 2))
    full = _truncate_image(root, path)
    ds = _dataset(root, path, test_mode=True)
    with pytest.raises(OSError, match=f'truncated .*{osp.basename(full)}'):
        ds[1]
    train = _dataset(root, path, skip_invalid=True, filter_empty_gt=False)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        item = train[1]  # refetches another item
    assert item['data_samples'].token != 's0f1'
    assert train.skipped and train.skipped[0][0] == 's0f1'


def test_checks_accept_real_values():
    pose = np.eye(4)
    pose[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    pose[:3, 3] = [400.0, 1100.0, 1.5]
    assert check_pose('p', pose) == []
    proj = np.eye(4)
    proj[:3, :3] = [[800, 0, 800], [0, 800, 450], [0, 0, 1]]
    assert check_projection('p', proj) == []
    assert check_boxes(np.array([[1.0, 2, -1, 4, 2, 1.5, 0.3]]), np.array([[np.nan, np.nan]])) == []
    assert check_boxes(np.zeros((1, 7)), np.array([[np.inf, 0]]))[1].startswith(
        'instances[0].velocity is infinite')
