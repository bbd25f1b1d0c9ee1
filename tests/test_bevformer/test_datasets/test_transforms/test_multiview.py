"""Tests for the multi-view transforms (projects/bevformer/datasets/transforms)."""
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
import torch
import mmcv.transforms  # noqa: F401  (registers mmcv's transforms into mmengine's registry)
from mmdet.registry import TRANSFORMS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS

from projects.bevformer.datasets import CAMERAS
from projects.bevformer.datasets.transforms import (FilterBEVInstances, LoadMultiViewImages,
                                                    MultiViewCrop,
                                                    MultiViewPhotoMetricDistortion,
                                                    MultiViewResize, PackBEVInputs)
from projects.bevformer.geometry.camera import project_points
from projects.bevformer.structures import Det3DDataSample

from tests.test_bevformer.bev_data_helpers import REAL_SAMPLE_DIR

NAMES = ['LoadMultiViewImages', 'MultiViewPhotoMetricDistortion', 'MultiViewResize',
         'MultiViewCrop', 'FilterBEVInstances',
         'PackBEVInputs']


def test_registered_without_collisions():
    import projects.bevformer.datasets.transforms as ours
    for name in NAMES:
        # registering into mmdet without force=True would have failed on a clash there
        assert TRANSFORMS.module_dict[name] is getattr(ours, name), name
        assert name not in MMENGINE_TRANSFORMS.module_dict, name  # mmcv's live here


@pytest.fixture(scope='module')
def real_frame(real_info):
    info = real_info
    cams = [info['cams'][c] for c in CAMERAS]
    return dict(
        token=info['token'], img_paths=[osp.join(REAL_SAMPLE_DIR, c['img_path']) for c in cams],
        cam_sizes=np.array([[c['height'], c['width']] for c in cams]),
        lidar2img=np.stack([c['lidar2img'] for c in cams]),
        cam2img=np.stack([c['cam2img'] for c in cams]),
        boxes=np.array([i['bbox_3d'] for i in info['instances']]),
        labels=np.array([i['label'] for i in info['instances']]))


def _frame_results(frame):
    return {k: (v.copy() if isinstance(v, np.ndarray) else list(v) if isinstance(v, list) else v)
            for k, v in frame.items()}


# ---------------------------------------------------------------------------- loading
def test_load_real_images(real_frame):
    res = LoadMultiViewImages().transform(_frame_results(real_frame))
    assert res['img'].shape == (6, 900, 1600, 3) and res['img'].dtype == np.uint8
    assert res['img_shape'] == (900, 1600) == res['ori_shape'] == res['pad_shape']
    ref = mmcv.imread(real_frame['img_paths'][3])
    np.testing.assert_array_equal(res['img'][3], ref)
    res = LoadMultiViewImages(to_float32=True).transform(_frame_results(real_frame))
    assert res['img'].dtype == np.float32


def test_load_missing_and_corrupt_images(tmp_path, real_frame):
    good = real_frame['img_paths'][0]
    missing = str(tmp_path / 'nope.jpg')
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        LoadMultiViewImages().transform(dict(img_paths=[good, missing]))
    bad = tmp_path / 'corrupt.jpg'
    bad.write_bytes(b'not a jpeg at all' * 10)
    with pytest.raises(OSError, match='corrupt.jpg'):
        LoadMultiViewImages().transform(dict(img_paths=[good, str(bad)]))
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(OSError, match='empty.jpg'):
        LoadMultiViewImages().transform(dict(img_paths=[str(empty)]))


def test_load_size_checks(tmp_path, real_frame):
    small = str(tmp_path / 'small.png')
    cv2.imwrite(small, np.zeros((10, 20, 3), np.uint8))
    with pytest.raises(ValueError, match='one size'):
        LoadMultiViewImages().transform(dict(img_paths=[real_frame['img_paths'][0], small]))
    with pytest.raises(ValueError, match='info file says'):
        LoadMultiViewImages().transform(dict(img_paths=[small], cam_sizes=np.array([[20, 10]])))


# ---------------------------------------------------------------- geometry consistency
def _visible_box_centres(frame, cam, hw):
    boxes = frame['boxes'].copy()
    centres = boxes[:, :3] + np.stack([np.zeros(len(boxes)), np.zeros(len(boxes)),
                                       boxes[:, 5] / 2], 1)
    uv, d = project_points(centres, frame['lidar2img'][cam])
    inside = (d > 1) & (uv[:, 0] > 40) & (uv[:, 0] < hw[1] - 40) & (uv[:, 1] > 40) & (
        uv[:, 1] < hw[0] - 40)
    return centres[inside], uv[inside]


@pytest.mark.parametrize('ops', [
    [MultiViewResize(scale_factor=0.4)],
    [MultiViewResize(size=(700, 500))],  # anisotropic
    [MultiViewResize(scale_factor=0.5), MultiViewCrop((300, 640), position=(60, 110))],
    [MultiViewCrop((600, 1000), position='bottom'), MultiViewResize(scale_factor=0.75)],
])
def test_marker_stays_on_projected_point(real_frame, ops):
    """Paint markers where real box centres project, transform, re-project: same colour."""
    res = LoadMultiViewImages().transform(_frame_results(real_frame))
    rng = np.random.default_rng(0)
    marks = {}
    for cam in range(6):
        centres, uv = _visible_box_centres(real_frame, cam, (900, 1600))
        colours = rng.integers(0, 256, size=(len(centres), 3))
        keep = []
        for i, (u, v) in enumerate(uv):  # markers must not overlap
            if all(np.abs(uv[j] - (u, v)).max() > 25 for j in keep):
                keep.append(i)
                r, c = int(v), int(u)  # pixel containing the point (edges at integers)
                res['img'][cam, r - 9:r + 10, c - 9:c + 10] = colours[i]
        marks[cam] = (centres[keep], colours[keep])
    assert sum(len(c) for c, _ in marks.values()) >= 10
    for op in ops:
        res = op.transform(res)
    h, w = res['img_shape']
    checked = 0
    for cam, (centres, colours) in marks.items():
        uv, _ = project_points(centres, res['lidar2img'][cam])
        for (u, v), col in zip(uv, colours):
            if not (0 <= u < w and 0 <= v < h):
                continue
            got = res['img'][cam, int(v), int(u)].astype(int)
            assert np.abs(got - col).max() <= 2, (cam, u, v, got, col)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize('scale', [0.5, 0.3, (0.37, 0.61)])
def test_resize_update_is_subpixel_exact(scale):
    """On a ramp image (value = pixel-centre column), the value at the projected pixel after
    resize is the original sub-pixel column: lidar2img follows the image exactly."""
    h, w = 90, 160
    cols = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w))
    rows = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
    img = np.stack([cols, rows, np.zeros_like(cols)], -1)[None]  # (1, H, W, 3)
    k = np.array([[100.0, 0, 80.3], [0, 100.0, 45.7], [0, 0, 1]])
    lidar2img = np.eye(4)
    lidar2img[:3, :3] = k
    pts = np.array([[0.1, 0.05, 1.0], [-0.33, 0.2, 1.0], [0.52, -0.31, 1.0]])
    uv, _ = project_points(pts, lidar2img)
    op = (MultiViewResize(scale_factor=scale) if np.isscalar(scale) else
          MultiViewResize(size=(round(w * scale[0]), round(h * scale[1]))))
    res = op.transform(dict(img=img.copy(), lidar2img=lidar2img[None].copy()))
    uv2, _ = project_points(pts, res['lidar2img'][0])
    out = res['img'][0]
    for (u, v), (u2, v2) in zip(uv, uv2):
        # bilinear read at the continuous point (pixel centres at +0.5)
        x, y = u2 - 0.5, v2 - 0.5
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        patch = out[y0:y0 + 2, x0:x0 + 2]
        val = ((1 - fy) * ((1 - fx) * patch[0, 0] + fx * patch[0, 1]) + fy *
               ((1 - fx) * patch[1, 0] + fx * patch[1, 1]))
        assert abs(val[0] - (u - 0.5)) < 1e-3 and abs(val[1] - (v - 0.5)) < 1e-3


def test_resize_crop_shapes_and_meta():
    img = np.zeros((6, 90, 160, 3), np.uint8)
    l2i = np.tile(np.eye(4), (6, 1, 1))
    k = np.tile(np.eye(3), (6, 1, 1))
    res = MultiViewResize(scale_factor=0.5).transform(dict(img=img, lidar2img=l2i, cam2img=k))
    assert res['img'].shape == (6, 45, 80, 3) and res['img_shape'] == (45, 80)
    assert res['scale_factor'] == (0.5, 0.5) and res['cam2img'][0, 0, 0] == 0.5
    res = MultiViewCrop((40, 64), position='center').transform(res)
    assert res['img'].shape == (6, 40, 64, 3) and res['crop_top_left'] == (8, 2)
    np.testing.assert_allclose(res['lidar2img'][0, :2, 2], [-8, -2])
    np.random.seed(0)
    crops = {MultiViewCrop((40, 64), 'random').transform(
        dict(img=np.zeros((1, 45, 80, 3)), lidar2img=l2i[:1]))['crop_top_left']
        for _ in range(20)}
    assert len(crops) > 1
    with pytest.raises(ValueError, match='does not fit'):
        MultiViewCrop((50, 64)).transform(dict(img=np.zeros((1, 45, 80, 3))))
    with pytest.raises(ValueError, match='exactly one'):
        MultiViewResize()


# --------------------------------------------------------------------- photometric
def test_photometric_per_camera():
    rng = np.random.default_rng(0)
    base = rng.integers(30, 220, size=(1, 20, 30, 3)).astype(np.uint8)
    img = np.repeat(base, 6, axis=0)
    np.random.seed(3)
    out = MultiViewPhotoMetricDistortion().transform(dict(img=img.copy()))['img']
    assert out.shape == img.shape and out.dtype == np.float32
    diffs = [np.abs(out[i] - out[0]).mean() for i in range(1, 6)]
    assert max(diffs) > 1.0  # cameras are distorted independently


# -------------------------------------------------------------------- GT filtering
def test_filter_instances():
    boxes = np.array([
        [1, 2, 0, 4, 2, 1.5, 0.5, np.nan, np.nan],  # kept, unknown velocity stays NaN
        [60, 0, 0, 4, 2, 1.5, 0, 1, 1],  # out of range (x)
        [0, -51.3, 0, 4, 2, 1.5, 0, 1, 1],  # out of range (y)
        [3, 3, 0, 4, 2, 1.5, 4.0, 1, 2],  # kept, yaw wrapped into [-pi, pi)
        [3, 3, 0, 4, 2, 1.5, 0, 1, 2],  # label -1
        [3, 3, 0, 4, 2, 1.5, 0, 1, 2],  # valid_flag False
    ], dtype=np.float32)
    labels = np.array([0, 0, 1, 8, -1, 3])
    valid = np.array([True, True, True, True, True, False])
    f = FilterBEVInstances(point_cloud_range=[-51.2, -51.2, -5, 51.2, 51.2, 3])
    res = f.transform(dict(gt_bboxes_3d=boxes, gt_labels_3d=labels, gt_valid_flag=valid))
    assert res['gt_labels_3d'].tolist() == [0, 8]
    assert np.isnan(res['gt_bboxes_3d'][0, 7:]).all()
    assert abs(res['gt_bboxes_3d'][1, 6] - (4.0 - 2 * np.pi)) < 1e-6
    zeroed = FilterBEVInstances(nan_velocity_to_zero=True).transform(
        dict(gt_bboxes_3d=boxes, gt_labels_3d=labels, gt_valid_flag=valid))
    np.testing.assert_allclose(zeroed['gt_bboxes_3d'][0, 7:], [0, 0])
    res = FilterBEVInstances(use_valid_flag=False).transform(
        dict(gt_bboxes_3d=boxes, gt_labels_3d=labels, gt_valid_flag=valid))
    assert res['gt_labels_3d'].tolist() == [0, 0, 1, 8, 3]
    res = FilterBEVInstances().transform(
        dict(gt_bboxes_3d=np.zeros((0, 9), np.float32), gt_labels_3d=np.zeros(0, np.int64)))
    assert res['gt_bboxes_3d'].shape == (0, 9)
    with pytest.raises(ValueError, match='gt_bboxes_3d must be'):
        FilterBEVInstances().transform(dict(gt_bboxes_3d=np.zeros((2, 5)), gt_labels_3d=[0, 0]))


# ------------------------------------------------------------------------- packing
def test_pack():
    img = np.random.rand(6, 32, 48, 3).astype(np.float32)
    res = dict(img=img, gt_bboxes_3d=np.ones((3, 9), np.float32),
               gt_labels_3d=np.array([0, 1, 2]), token='t0', lidar2img=np.eye(4)[None].repeat(6, 0),
               img_shape=(30, 48), pad_shape=(32, 48), can_bus=np.zeros(18), prev_exists=True)
    out = PackBEVInputs().transform(res)
    t = out['inputs']['img']
    assert t.shape == (6, 3, 32, 48) and t.dtype == torch.float32
    torch.testing.assert_close(t[2, 1], torch.from_numpy(img[2, :, :, 1]))
    sample = out['data_samples']
    assert isinstance(sample, Det3DDataSample)
    assert sample.gt_instances_3d.bboxes_3d.shape == (3, 9)
    assert sample.gt_instances_3d.bboxes_3d.dtype == torch.float32
    assert sample.gt_instances_3d.labels_3d.dtype == torch.long
    assert sample.token == 't0' and sample.lidar2img.dtype == np.float64
    assert sample.img_shape == (30, 48) and sample.prev_exists is True
    unknown_velocity = np.ones((1, 9), np.float32)
    unknown_velocity[0, 7:] = np.nan
    packed = PackBEVInputs().transform(dict(res, gt_bboxes_3d=unknown_velocity, gt_labels_3d=[0]))
    assert torch.isnan(packed['data_samples'].gt_instances_3d.bboxes_3d[0, 7:]).all()
    bad = dict(res, gt_bboxes_3d=np.full((1, 9), np.nan, np.float32), gt_labels_3d=[0])
    with pytest.raises(ValueError, match='non-finite centre, size or yaw.*frame t0'):
        PackBEVInputs().transform(bad)
    with pytest.raises(ValueError, match=r'\(N_cam, H, W, 3\)'):
        PackBEVInputs().transform(dict(img=np.zeros((32, 48, 3))))
