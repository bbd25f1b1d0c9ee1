"""The original BEVFormer's geometry, kept for legacy mode: BEV rotation about a pixel, the TSA
reference shift from can_bus, and the mmdet3d v0.17 box / box-code conventions."""
import math

import numpy as np
import pytest
import torch

from projects.bevformer.geometry.box_coding import (code_from_mmdet3d_v017, decode_bboxes_3d,
                                                    encode_bboxes_3d)
from projects.bevformer.geometry.boxes import boxes_from_mmdet3d_v017, limit_angle
from projects.bevformer.geometry.ego_motion import can_bus_bev_shift, rotate_bev_about_pixel


def _grid(h, w, c=3):
    return torch.randn(1, h * w, c)


def test_rotation_by_90_about_the_centre_is_rot90():
    h = w = 6
    bev = _grid(h, w)
    out = rotate_bev_about_pixel(bev, torch.tensor([90.0]), (w / 2, h / 2), h, w)
    img = bev.view(h, w, -1)
    # Counter-clockwise in image coordinates (x right, y down): torch.rot90 with k=1 over
    # (row, col) turns the top row into the left column.
    want = torch.rot90(img, k=1, dims=(0, 1)).reshape(1, h * w, -1)
    torch.testing.assert_close(out, want)


def test_rotation_zero_angle_is_identity_and_far_centre_shifts_content():
    h, w = 8, 10
    bev = _grid(h, w)
    torch.testing.assert_close(rotate_bev_about_pixel(bev, torch.tensor([0.0]), (100, 100), h, w),
                               bev)
    # About a pixel far outside the map, a small angle moves the content by many cells.
    idx = (torch.arange(h * w, dtype=torch.float32) + 1)[None, :, None]
    out = rotate_bev_about_pixel(idx, torch.tensor([3.0]), (100, 100), h, w)[0, :, 0]
    assert int((out == 0).sum()) > 0  # cells rotated in from outside are zero


def test_rotation_batch_equals_one_by_one():
    h = w = 12
    bev = torch.randn(2, h * w, 4)
    angles = torch.tensor([3.0, -17.5], dtype=torch.float64)
    both = rotate_bev_about_pixel(bev, angles, (100, 100), h, w)
    for i in range(2):
        one = rotate_bev_about_pixel(bev[i:i + 1], angles[i:i + 1], (100, 100), h, w)
        torch.testing.assert_close(both[i:i + 1], one, rtol=0, atol=0)
    with pytest.raises(ValueError, match='angle_deg must have 2'):
        rotate_bev_about_pixel(bev, angles[:1], (100, 100), h, w)


def test_can_bus_shift_follows_the_original_formula():
    can_bus = torch.zeros(2, 18, dtype=torch.float64)
    # Sample 0: heading 90 deg (yaw pi/2), moved 2.048 m along +y in the global frame
    # (straight ahead): bev_angle = 90 - 90 = 0 -> one cell in +y.
    can_bus[0, 1] = 2.048
    can_bus[0, 16] = math.pi / 2
    # Sample 1: no motion -> no shift.
    shift = can_bus_bev_shift(can_bus, 50, 50, [-51.2, -51.2, -5, 51.2, 51.2, 3])
    assert shift.dtype == torch.float32
    torch.testing.assert_close(shift[0], torch.tensor([0.0, 1 / 50]), atol=1e-7, rtol=0)
    torch.testing.assert_close(shift[1], torch.zeros(2))


def test_mmdet3d_v017_boxes_to_ours():
    # A car heading along +x in ours (yaw 0) is a = -pi/2 in mmdet3d v0.17, with w, l swapped.
    v017 = np.array([[1.0, 2.0, -1.5, 1.9, 4.5, 1.6, -math.pi / 2, 3.0, 0.5]])
    ours = boxes_from_mmdet3d_v017(v017)
    np.testing.assert_allclose(ours, [[1.0, 2.0, -1.5, 4.5, 1.9, 1.6, 0.0, 3.0, 0.5]],
                               atol=1e-12)
    rng = np.random.default_rng(0)
    boxes = rng.normal(size=(50, 7))
    boxes[:, 3:6] = np.abs(boxes[:, 3:6]) + 0.1
    back = boxes_from_mmdet3d_v017(boxes)
    assert np.all((back[:, 6] >= -math.pi) & (back[:, 6] < math.pi))
    np.testing.assert_allclose(limit_angle(-back[:, 6] - math.pi / 2 - boxes[:, 6]), 0, atol=1e-12)
    with pytest.raises(ValueError, match=r'\(N, 7\) or \(N, 9\)'):
        boxes_from_mmdet3d_v017(np.zeros((2, 8)))


def test_v017_code_map_is_an_involution_and_matches_encoding():
    rng = np.random.default_rng(1)
    v017 = rng.normal(size=(20, 9))
    v017[:, 3:6] = np.abs(v017[:, 3:6]) + 0.1
    # The original's normalize_bbox on mmdet3d v0.17 boxes (gravity-centre z).
    b = torch.as_tensor(v017)
    code_017 = torch.stack([b[:, 0], b[:, 1], b[:, 3].log(), b[:, 4].log(), b[:, 2] + b[:, 5] / 2,
                            b[:, 5].log(), b[:, 6].sin(), b[:, 6].cos(), b[:, 7], b[:, 8]], -1)
    ours = encode_bboxes_3d(torch.as_tensor(boxes_from_mmdet3d_v017(v017)))
    torch.testing.assert_close(code_from_mmdet3d_v017(code_017), ours)
    torch.testing.assert_close(code_from_mmdet3d_v017(ours), code_017)
    # Decoding the mapped code gives our boxes back.
    torch.testing.assert_close(decode_bboxes_3d(ours)[:, :6],
                               torch.as_tensor(boxes_from_mmdet3d_v017(v017))[:, :6])
