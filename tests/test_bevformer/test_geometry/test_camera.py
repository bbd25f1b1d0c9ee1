"""Tests for projects/bevformer/geometry/camera.py (parity with the nuScenes devkit)."""
import os.path as osp

import numpy as np
import pytest
import torch
from nuscenes.utils.geometry_utils import view_points

from projects.bevformer.geometry.bev import project_points_to_cameras
from projects.bevformer.geometry.camera import (apply_image_affine, cam2img_to_4x4,
                                                compose_lidar2img, crop_lidar2img,
                                                image_affine, project_points, scale_lidar2img,
                                                visibility_mask)

from tests.shared_data import REAL_SAMPLE_DIR

SAMPLE = osp.join(REAL_SAMPLE_DIR, 'sample.json')


def _box_centres(sample):
    pts = np.array([b['lidar']['bottom_center'] for b in sample['boxes']])
    pts[:, 2] += np.array([b['lidar']['size_lwh'][2] for b in sample['boxes']]) / 2
    return pts


def test_projection_matches_devkit_view_points(sample_json):
    pts = _box_centres(sample_json)
    for name, cam in sample_json['cameras'].items():
        cam2img, lidar2cam = np.array(cam['cam2img']), np.array(cam['lidar2cam'])
        lidar2img = compose_lidar2img(cam2img, lidar2cam)
        uv, depth = project_points(pts, lidar2img)
        cam_pts = pts @ lidar2cam[:3, :3].T + lidar2cam[:3, 3]
        front = cam_pts[:, 2] > 1e-5
        ref = view_points(cam_pts.T, cam2img, normalize=True)[:2].T
        np.testing.assert_allclose(depth, cam_pts[:, 2], atol=1e-9)
        np.testing.assert_allclose(uv[front], ref[front], rtol=1e-9, atol=1e-6)


def test_real_boxes_visible_somewhere(sample_json):
    # Every annotated box centre with lidar points is seen by at least one camera
    # (nuScenes annotates objects in the camera field of view, which covers 360 deg).
    pts = _box_centres(sample_json)
    seen = np.zeros(len(pts), dtype=bool)
    for cam in sample_json['cameras'].values():
        l2i = compose_lidar2img(np.array(cam['cam2img']), np.array(cam['lidar2cam']))
        uv, d = project_points(pts, l2i)
        seen |= visibility_mask(uv, d, (900, 1600))
    npts = np.array([b['num_lidar_pts'] for b in sample_json['boxes']])
    assert seen[npts > 5].mean() > 0.95


def test_cam2img_to_4x4_numpy_and_torch():
    k = np.array([[100.0, 0, 50], [0, 90, 40], [0, 0, 1]])
    k4 = cam2img_to_4x4(k)
    assert k4.shape == (4, 4) and k4[3, 3] == 1 and (k4[:3, :3] == k).all()
    assert (k4[:3, 3] == 0).all() and (k4[3, :3] == 0).all()
    kt = cam2img_to_4x4(torch.tensor(np.stack([k, k])))
    assert isinstance(kt, torch.Tensor) and kt.shape == (2, 4, 4)
    np.testing.assert_array_equal(kt[1].numpy(), k4)
    with pytest.raises(ValueError, match=r'\(\.\.\., 3, 3\)'):
        cam2img_to_4x4(np.eye(4))


def _random_setup(seed=0):
    rng = np.random.default_rng(seed)
    k = np.array([[800.0, 0, 640], [0, 780, 360], [0, 0, 1]])
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot *= np.sign(np.linalg.det(rot))
    lidar2cam = np.eye(4)
    lidar2cam[:3, :3], lidar2cam[:3, 3] = rot, rng.normal(size=3)
    pts = rng.normal(size=(50, 3)) * 10
    return k, lidar2cam, pts


def test_scale_and_crop_move_pixels_exactly():
    k, lidar2cam, pts = _random_setup()
    l2i = compose_lidar2img(k, lidar2cam)
    uv, d = project_points(pts, l2i)
    uv_s, d_s = project_points(pts, scale_lidar2img(l2i, (0.5, 0.25)))
    np.testing.assert_allclose(uv_s, uv * [0.5, 0.25], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(d_s, d)
    uv_c, d_c = project_points(pts, crop_lidar2img(l2i, (30, 7)))
    front = d > 1e-5  # behind the camera the pixels are meaningless (depth clamped)
    assert front.sum() > 10
    np.testing.assert_allclose(uv_c[front], uv[front] - [30, 7], atol=1e-9)
    np.testing.assert_allclose(d_c, d)
    # Resize then crop == one affine (scale, then offset in output pixels).
    both = crop_lidar2img(scale_lidar2img(l2i, (2.0, 3.0)), (5, 6))
    np.testing.assert_allclose(both, apply_image_affine(l2i, image_affine((2, 3), (-5, -6))))


def test_intrinsics_update_matches_lidar2img_update():
    k, lidar2cam, _ = _random_setup(1)
    l2i = compose_lidar2img(k, lidar2cam)
    aff = image_affine((0.3, 0.7), (-11, 4))
    np.testing.assert_allclose(compose_lidar2img(apply_image_affine(k, aff), lidar2cam),
                               apply_image_affine(l2i, aff), atol=1e-10)


def test_torch_and_numpy_agree_and_broadcast():
    k, lidar2cam, pts = _random_setup(2)
    l2i = np.stack([compose_lidar2img(k, lidar2cam),
                    scale_lidar2img(compose_lidar2img(k, lidar2cam), (0.5, 0.5))])  # (2, 4, 4)
    uv, d = project_points(pts, l2i)
    assert uv.shape == (2, 50, 2) and d.shape == (2, 50)
    uv_t, d_t = project_points(torch.tensor(pts), torch.tensor(l2i))
    assert isinstance(uv_t, torch.Tensor)
    np.testing.assert_allclose(uv_t.numpy(), uv, rtol=1e-12)
    np.testing.assert_allclose(d_t.numpy(), d, rtol=1e-12)
    # Batched: points (bs, 1, P, 3) with lidar2img (bs, N_cam, 4, 4).
    uv_b, _ = project_points(np.stack([pts, pts])[:, None], np.stack([l2i, l2i]))
    assert uv_b.shape == (2, 2, 50, 2)
    np.testing.assert_allclose(uv_b[1], uv)
    mask_t = visibility_mask(uv_t, d_t, (720, 1280))
    np.testing.assert_array_equal(mask_t.numpy(), visibility_mask(uv, d, (720, 1280)))
    scaled = scale_lidar2img(torch.tensor(l2i), (0.5, 0.5))
    assert isinstance(scaled, torch.Tensor)
    np.testing.assert_allclose(scaled.numpy(), scale_lidar2img(l2i, (0.5, 0.5)))


def test_visibility_mask_edges_and_depth():
    # strictly inside (the encoder's rule, kept from the original BEVFormer): u == 0 is out
    uv = np.array([[0.0, 0.0], [9.999, 4.999], [10.0, 1.0], [1.0, 5.0], [-1e-6, 1], [3, 3],
                   [1e-6, 1e-6], [0.0, 2.0]])
    d = np.array([1.0, 1.0, 1.0, 1.0, 1.0, -2.0, 1.0, 1.0])
    expected = [False, True, False, False, False, False, True, False]
    np.testing.assert_array_equal(visibility_mask(uv, d, (5, 10)), expected)
    np.testing.assert_array_equal(visibility_mask(torch.tensor(uv), torch.tensor(d), (5, 10)),
                                  expected)
    # one (H, W) per leading index
    per_row = visibility_mask(uv[None].repeat(2, 0), d[None].repeat(2, 0),
                              np.array([[[5, 10]], [[5, 9]]]))
    np.testing.assert_array_equal(per_row[0], expected)
    assert not per_row[1, 1]  # u = 9.999 is outside a 9-pixel-wide image
    with pytest.raises(ValueError, match='matching depth'):
        visibility_mask(uv, d[:3], (5, 10))


def test_behind_camera_depth_negative_and_finite():
    l2i = compose_lidar2img(np.eye(3), np.eye(4))
    uv, d = project_points(np.array([[1.0, 2.0, -3.0]]), l2i)
    assert d[0] == -3.0 and np.isfinite(uv).all()


def test_agrees_with_encoder_projection():
    """geometry/bev.py (used by the encoder) and this module share one pixel convention."""
    k, lidar2cam, _ = _random_setup(3)
    l2i = compose_lidar2img(k, lidar2cam)
    pc_range = [-50, -50, -5, 50, 50, 3]
    ref = torch.rand(1, 2, 30, 3, dtype=torch.float64)
    pts = ref.numpy() * (np.array(pc_range[3:]) - pc_range[:3]) + pc_range[:3]  # (1, 2, 30, 3)
    ref_cam, mask = project_points_to_cameras(ref.float(), pc_range,
                                              torch.tensor(l2i[None, None]), (720, 1280),
                                              (736, 1280))
    uv, d = project_points(pts[0], l2i)  # (2, 30, 2)
    vis = visibility_mask(uv, d, (720, 1280))
    expect = (uv / [1280, 736]).transpose(1, 0, 2)  # (30, D, 2)
    got = ref_cam[0, 0].double().numpy()
    np.testing.assert_allclose(got[vis.T], expect[vis.T], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(mask[0, 0].numpy(), vis.T)  # one boundary rule


def test_shape_errors():
    with pytest.raises(ValueError, match=r'points must be \(\.\.\., P, 3\)'):
        project_points(np.zeros((4, 2)), np.eye(4))
    with pytest.raises(ValueError, match='lidar2img'):
        project_points(np.zeros((4, 3)), np.eye(3))
    with pytest.raises(ValueError, match='mat must be'):
        scale_lidar2img(np.eye(2), (1, 1))
    assert osp.isfile(SAMPLE)
