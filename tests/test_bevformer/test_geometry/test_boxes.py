"""Box geometry against the nuScenes devkit and the real key frame (tests/data/nuscenes_sample)."""
import os.path as osp

import numpy as np
import pytest
import torch
from nuscenes.eval.common.utils import quaternion_yaw
from nuscenes.utils.data_classes import Box
from pyquaternion import Quaternion

from projects.bevformer.constants import CAMERAS
from projects.bevformer.geometry.boxes import (box_corners, boxes_from_mmdet3d_infos,
                                               global_boxes_to_lidar, limit_angle,
                                               lidar_boxes_to_global, matrix_to_quaternion,
                                               mmdet3d_info_yaw,
                                               pose_matrix, quaternion_to_matrix,
                                               quaternion_to_yaw, yaw_to_quaternion)

from tests.shared_data import REAL_SAMPLE_DIR as SAMPLE_DIR


@pytest.fixture(scope='module')
def sample(sample_json):
    data = sample_json
    boxes = np.array([b['lidar']['bottom_center'] + b['lidar']['size_lwh'] + [b['lidar']['yaw']]
                      + b['lidar']['velocity'] for b in data['boxes']])
    lidar2global = np.array(data['ego2global']) @ np.array(data['lidar2ego'])
    return data, boxes, lidar2global


def _random_quaternions(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_quaternion_matrix_parity_with_pyquaternion():
    for q in _random_quaternions(20):
        np.testing.assert_allclose(quaternion_to_matrix(q), Quaternion(q).rotation_matrix,
                                   atol=1e-12)
        back = matrix_to_quaternion(Quaternion(q).rotation_matrix)
        assert back[0] >= 0
        # q and -q are the same rotation
        assert min(np.abs(back - q).max(), np.abs(back + q).max()) < 1e-9
        assert quaternion_to_yaw(q) == pytest.approx(quaternion_yaw(Quaternion(q)), abs=1e-12)
    # batched shapes are kept
    assert matrix_to_quaternion(np.tile(np.eye(3), (2, 3, 1, 1))).shape == (2, 3, 4)


def test_yaw_quaternion_round_trip():
    yaw = np.linspace(-np.pi + 1e-6, np.pi, 37)
    q = yaw_to_quaternion(yaw)
    assert q.shape == (37, 4) and np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(quaternion_to_yaw(q), yaw, atol=1e-12)
    for y, qi in zip(yaw, q):
        ref = Quaternion(axis=[0, 0, 1], angle=y)
        assert min(np.abs(qi - ref.elements).max(), np.abs(qi + ref.elements).max()) < 1e-12


def test_box_corners_match_devkit_box_corners():
    rng = np.random.default_rng(1)
    boxes = np.concatenate([rng.uniform(-30, 30, (6, 3)), rng.uniform(0.3, 8, (6, 3)),
                            rng.uniform(-np.pi, np.pi, (6, 1))], 1)
    ours = box_corners(boxes)
    assert ours.shape == (6, 8, 3)
    for box, corners in zip(boxes, ours):
        x, y, z, length, width, height, yaw = box
        ref = Box([x, y, z + height / 2], [width, length, height],
                  Quaternion(axis=[0, 0, 1], angle=yaw)).corners().T  # (8, 3)
        # same corner set (the devkit orders them differently)
        dist = np.linalg.norm(corners[:, None] - ref[None], axis=-1)
        assert dist.min(1).max() < 1e-9 and dist.min(0).max() < 1e-9
        # bottom face first, front (heading) corners 0 and 3
        np.testing.assert_allclose(corners[:4, 2], z)
        np.testing.assert_allclose(corners[4:, 2], z + height)
        front = (corners[0] + corners[3]) / 2 - np.array([x, y, z])
        np.testing.assert_allclose(front[:2], length / 2 * np.array([np.cos(yaw), np.sin(yaw)]),
                                   atol=1e-9)
    # torch gives the same numbers, same dtype and device
    t = box_corners(torch.from_numpy(boxes).float())
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), ours, atol=1e-4)
    with pytest.raises(ValueError, match=r'\(N, >=7\)'):
        box_corners(np.zeros((3, 6)))


def _count_points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Number of ``points`` (P, 3) inside each of ``boxes`` (N, >=7), from :func:`box_corners`
    alone: a point is inside when its offset from the back-right-bottom corner projects onto
    each of the three edges leaving that corner within the edge's length."""
    corners = box_corners(boxes)  # (N, 8, 3)
    origin = corners[:, 2]  # back-right, bottom face
    edges = np.stack([corners[:, 3] - origin,  # along the length (to the front-right corner)
                      corners[:, 1] - origin,  # along the width (to the back-left corner)
                      corners[:, 6] - origin], axis=1)  # up the height (to the top face)
    proj = np.einsum('npk,nek->npe', points[None] - origin[:, None], edges)  # (N, P, 3)
    lengths2 = np.einsum('nek,nek->ne', edges, edges)[:, None]  # (N, 1, 3)
    return ((proj >= 0) & (proj <= lengths2)).all(-1).sum(1)


def test_fixture_convention_points_in_boxes(sample):
    """Pins sample.json's lidar convention (README.md there): z of ``bottom_center`` is the
    bottom face. Boxes read that way through our box geometry hold the annotated number of
    LiDAR points; read as geometric centres (h / 2 too low) they lose a third of them."""
    data, boxes, _ = sample
    points = np.fromfile(osp.join(SAMPLE_DIR, data['lidar_file']), dtype=np.float32)
    assert points.size % 5 == 0  # (x, y, z, intensity, ring) records
    points = points.reshape(-1, 5)[:, :3].astype(np.float64)
    counts = _count_points_in_boxes(points, boxes)
    annotated = np.array([b['num_lidar_pts'] for b in data['boxes']])
    assert annotated.sum() == 1009
    # measured: 994 of 1009 (the annotation counts the points of the sweeps it was drawn on)
    assert abs(counts.sum() - annotated.sum()) <= 0.02 * annotated.sum(), counts.sum()
    well_seen = annotated >= 20
    assert well_seen.sum() >= 5
    # measured: worst 45 of 50 points (ratio 0.90)
    bad = np.flatnonzero(well_seen & (np.abs(counts - annotated) > 0.10 * annotated))
    assert bad.size == 0, [(i, counts[i], annotated[i]) for i in bad]
    # the other reading of z (geometric centre) is clearly wrong: the test can tell them apart
    as_centres = boxes.copy()
    as_centres[:, 2] -= boxes[:, 5] / 2
    assert _count_points_in_boxes(points, as_centres).sum() < 0.8 * annotated.sum()


def test_lidar_to_global_reproduces_devkit_boxes(sample):
    """Pins the fixture's two blocks to each other: our LiDAR -> global conversion of the
    ``lidar`` block (z at the bottom) gives the ``global`` block (geometric centre)."""
    data, boxes, lidar2global = sample
    glob = lidar_boxes_to_global(boxes, lidar2global)
    ref_center = np.array([b['global']['center'] for b in data['boxes']])
    ref_rot = np.array([b['global']['rotation_wxyz'] for b in data['boxes']])
    ref_vel = np.array([b['global']['velocity'] for b in data['boxes']])
    np.testing.assert_allclose(glob['center'], ref_center, atol=1e-6)
    np.testing.assert_allclose(glob['size_wlh'],
                               np.array([b['global']['size_wlh'] for b in data['boxes']]))
    angles = [abs((Quaternion(a).inverse * Quaternion(b)).angle)
              for a, b in zip(glob['rotation'], ref_rot)]
    assert max(angles) < 1e-6
    assert np.array_equal(np.isnan(glob['velocity']), np.isnan(ref_vel))
    np.testing.assert_allclose(glob['velocity'], ref_vel, atol=1e-9)  # NaN == NaN here
    # and back: global -> lidar reproduces the lidar block (velocity loses the small z
    # component the LiDAR tilt gives it)
    back = global_boxes_to_lidar(ref_center, glob['size_wlh'], ref_rot, ref_vel, lidar2global)
    np.testing.assert_allclose(back[:, :6], boxes[:, :6], atol=1e-5)
    np.testing.assert_allclose(limit_angle(back[:, 6] - boxes[:, 6]), 0, atol=1e-6)
    finite = ~np.isnan(boxes[:, 7])
    np.testing.assert_allclose(back[finite, 7:], boxes[finite, 7:], atol=0.02)
    # 7-column boxes have unknown velocity
    assert np.isnan(lidar_boxes_to_global(boxes[:, :7], lidar2global)['velocity']).all()
    with pytest.raises(ValueError, match='lidar2global'):
        lidar_boxes_to_global(boxes, np.eye(3))


def test_lidar2img_projection_matches_global_projection(sample):
    data, boxes, lidar2global = sample
    corners_lidar = box_corners(boxes).reshape(-1, 3)
    corners_global = np.concatenate([
        Box(b['global']['center'], b['global']['size_wlh'],
            Quaternion(b['global']['rotation_wxyz'])).corners().T for b in data['boxes']])
    checked = 0
    for cam in CAMERAS:
        c = data['cameras'][cam]
        cam2img4 = np.eye(4)
        cam2img4[:3, :3] = np.array(c['cam2img'])
        lidar2img = cam2img4 @ np.array(c['lidar2cam'])
        global2img = lidar2img @ np.linalg.inv(lidar2global)

        def project(mat, pts):
            p = np.concatenate([pts, np.ones((len(pts), 1))], 1) @ mat.T
            return p[:, :2] / p[:, 2:3], p[:, 2]

        uv_l, depth_l = project(lidar2img, corners_lidar)
        uv_g, depth_g = project(global2img, corners_global)
        # the two corner sets are ordered differently: compare each box's corner set
        for i in range(len(boxes)):
            sl = slice(8 * i, 8 * i + 8)
            if depth_l[sl].min() < 1.0:
                continue
            inside = (uv_l[sl, 0] > 0) & (uv_l[sl, 0] < 1600) & (uv_l[sl, 1] > 0) & \
                (uv_l[sl, 1] < 900)
            if not inside.any():
                continue
            dist = np.linalg.norm(uv_l[sl][:, None] - uv_g[sl][None], axis=-1)
            assert dist.min(1).max() < 0.05, (cam, i, dist.min(1).max())
            checked += 1
    assert checked > 30  # most of the 69 boxes are seen by some camera


def test_pose_matrix():
    q = Quaternion(axis=[0.2, -0.1, 1], angle=0.7)
    mat = pose_matrix([1, 2, 3], q.elements)
    np.testing.assert_allclose(mat, q.transformation_matrix + np.pad(
        np.array([[1.0], [2], [3]]), ((0, 1), (3, 0))), atol=1e-12)


def test_mmdet3d_info_boxes_to_ours(sample):
    """The real key frame's boxes written the way mmdet3d v0.17 (the original BEVFormer) and
    mmdet3d 1.x write info files (the devkit box moved into the LiDAR frame: its centre, wlh,
    ``yaw_pitch_roll[0]``) come back as the fixture's ``lidar`` block."""
    data, boxes, _ = sample
    l2e, e2g = np.array(data['lidar2ego']), np.array(data['ego2global'])
    l2e_t, l2e_q = l2e[:3, 3], Quaternion(matrix_to_quaternion(l2e[:3, :3]))
    e2g_t, e2g_q = e2g[:3, 3], Quaternion(matrix_to_quaternion(e2g[:3, :3]))
    locs, dims, rots = [], [], []
    for b in data['boxes']:
        box = Box(b['global']['center'], b['global']['size_wlh'],
                  Quaternion(b['global']['rotation_wxyz']))
        box.translate(-e2g_t)
        box.rotate(e2g_q.inverse)
        box.translate(-l2e_t)
        box.rotate(l2e_q.inverse)
        locs.append(box.center)
        dims.append(box.wlh)
        rots.append(box.orientation.yaw_pitch_roll[0])
    locs, dims, rots = np.array(locs), np.array(dims), np.array(rots)[:, None]
    v017 = np.concatenate([locs, dims, -rots - np.pi / 2], axis=1)
    v1x = np.concatenate([locs, dims[:, [1, 0, 2]], rots], axis=1)
    for boxes_in, convention in ((v017, 'v0.17'), (v1x, 'v1.x')):
        ours = boxes_from_mmdet3d_infos(boxes_in, convention)
        # (the fixture's matrices are rounded: 2e-6 m, as in the test above)
        np.testing.assert_allclose(ours[:, :6], boxes[:, :6], atol=1e-5)
        np.testing.assert_allclose(limit_angle(ours[:, 6] - boxes[:, 6]), 0, atol=1e-6)
        # velocity columns pass through
        with_vel = np.concatenate([boxes_in, boxes[:, 7:9]], axis=1)
        np.testing.assert_array_equal(boxes_from_mmdet3d_infos(with_vel, convention)[:, 7:],
                                      boxes[:, 7:9])
    assert boxes_from_mmdet3d_infos(np.zeros(0), 'v1.x').shape == (0, 7)
    with pytest.raises(ValueError, match='convention'):
        boxes_from_mmdet3d_infos(v1x, 'v2')
    with pytest.raises(ValueError, match=r'\(N, 7\)'):
        boxes_from_mmdet3d_infos(v1x[:, :6], 'v1.x')


def test_mmdet3d_info_yaw_is_pyquaternions():
    """mmdet3d's converters store ``Quaternion.yaw_pitch_roll[0]``; ours is the heading of the
    box's x axis: the same for a box upright in the frame, not for a tilted one."""
    q = _random_quaternions(50, seed=3)
    rot = quaternion_to_matrix(q)
    ypr = np.array([Quaternion(x).yaw_pitch_roll[0] for x in q])
    np.testing.assert_allclose(limit_angle(mmdet3d_info_yaw(rot) - ypr), 0, atol=1e-12)
    upright = quaternion_to_matrix(yaw_to_quaternion(np.linspace(-3, 3, 7)))
    np.testing.assert_allclose(mmdet3d_info_yaw(upright), np.linspace(-3, 3, 7), atol=1e-12)
    heading = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])
    assert np.abs(limit_angle(heading - ypr)).max() > 0.1
