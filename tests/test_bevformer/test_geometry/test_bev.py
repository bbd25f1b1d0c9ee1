"""Tests of the BEV grid / camera projection / ego-motion geometry (projects/bevformer/geometry)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from projects.bevformer.geometry.bev import (bev_grid_2d, denormalize_points, pillar_points_3d,
                                             project_points_to_cameras)
from projects.bevformer.geometry.ego_motion import (align_prev_bev, can_bus_deltas,
                                                    relative_pose)

from tests.shared_data import REAL_SAMPLE_DIR

SAMPLE_DIR = Path(REAL_SAMPLE_DIR)
PC_RANGE = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)


def rigid(yaw: float, t=(0.0, 0.0, 0.0), dtype=torch.float64) -> torch.Tensor:
    """4x4 rotation about +z by ``yaw`` followed by translation ``t``."""
    c, s = math.cos(yaw), math.sin(yaw)
    mat = torch.eye(4, dtype=dtype)
    mat[:2, :2] = torch.tensor([[c, -s], [s, c]], dtype=dtype)
    mat[:3, 3] = torch.tensor(t, dtype=dtype)
    return mat


# ----------------------------------------------------------------------------- BEV grids
def test_bev_grid_2d_row_major_x_along_columns():
    ref = bev_grid_2d(3, 5, bs=2)
    assert ref.shape == (2, 15, 1, 2)
    assert torch.equal(ref[0], ref[1])
    for row in range(3):
        for col in range(5):
            x, y = ref[0, row * 5 + col, 0].tolist()
            assert x == pytest.approx((col + 0.5) / 5)
            assert y == pytest.approx((row + 0.5) / 3)


def test_pillar_points_3d_heights_and_grid():
    ref = pillar_points_3d(4, 6, 4, PC_RANGE, bs=2)
    assert ref.shape == (2, 4, 24, 3)
    metres = denormalize_points(ref, PC_RANGE)
    # BEVFormer's anchors: 0.5 m inside the z range, evenly spaced.
    heights = metres[0, :, 0, 2]
    assert torch.allclose(heights, torch.tensor([-4.5, -5 + 0.5 + 7 / 3, -5 + 0.5 + 14 / 3, 2.5]),
                          atol=1e-5)
    # Every anchor of a pillar shares the cell centre of bev_grid_2d.
    grid = bev_grid_2d(4, 6, 1)[0, :, 0]
    for d in range(4):
        assert torch.allclose(ref[0, d, :, :2], grid)
    # Cell (row 0, col 0) is the (x_min, y_min) corner cell: 102.4 / 6 and / 4 metre cells.
    assert metres[0, 0, 0, 0].item() == pytest.approx(-51.2 + 102.4 / 12, abs=1e-4)
    assert metres[0, 0, 0, 1].item() == pytest.approx(-51.2 + 102.4 / 8, abs=1e-4)


def test_pc_range_errors_name_the_file():
    with pytest.raises(ValueError, match='bev.py: pc_range'):
        pillar_points_3d(2, 2, 4, (0, 0, 0, 1, 1), bs=1)
    with pytest.raises(ValueError, match='bev.py: pc_range'):
        pillar_points_3d(2, 2, 4, (0, 0, 0, -1, 1, 1), bs=1)


# ----------------------------------------------------------------------------- projection
def pinhole_lidar2img(focal: float, cx: float, cy: float, cam_from_lidar: torch.Tensor):
    """lidar2img = K4 @ lidar2cam for a camera looking along lidar +x (cam z = lidar x,
    cam x = -lidar y, cam y = -lidar z), placed by ``cam_from_lidar`` (4x4, lidar -> lidar)."""
    axes = torch.tensor([[0., -1., 0., 0.], [0., 0., -1., 0.], [1., 0., 0., 0.], [0., 0., 0., 1.]],
                        dtype=torch.float64)
    k4 = torch.eye(4, dtype=torch.float64)
    k4[:3, :3] = torch.tensor([[focal, 0, cx], [0, focal, cy], [0, 0, 1]], dtype=torch.float64)
    return k4 @ axes @ cam_from_lidar


def normalize(points_m: torch.Tensor, pc_range=PC_RANGE) -> torch.Tensor:
    lo = torch.tensor(pc_range[:3], dtype=torch.float64)
    hi = torch.tensor(pc_range[3:], dtype=torch.float64)
    return ((points_m - lo) / (hi - lo)).float()


def test_project_points_pixels_padding_and_mask():
    img_hw, pad_hw = (100, 200), (128, 224)
    lidar2img = pinhole_lidar2img(100.0, 100.0, 50.0, torch.eye(4, dtype=torch.float64))
    points_m = torch.tensor([
        [10.0, 0.0, 0.0],  # optical axis -> principal point (100, 50), visible
        [10.0, 5.0, -2.0],  # u = 100 - 100*5/10 = 50, v = 50 + 100*2/10 = 70, visible
        [10.0, -11.0, 0.0],  # u = 210: in the padding, not in the valid image
        [-10.0, 0.0, 0.0],  # behind the camera
        [10.0, 0.0, 5.5],  # v = -5: above the image
    ], dtype=torch.float64)
    ref_3d = normalize(points_m)[None, :, None, :].permute(0, 2, 1, 3)  # (1, D=1, Q=5, 3)
    # Two samples: the second camera is moved 5 m to the left (+y), so the first point moves right.
    lidar2img_b = torch.stack((lidar2img, pinhole_lidar2img(100.0, 100.0, 50.0,
                                                             rigid(0.0, (0.0, -5.0, 0.0)))))
    ref_cam, mask = project_points_to_cameras(ref_3d.expand(2, -1, -1, -1), PC_RANGE,
                                              lidar2img_b[:, None].float(), img_hw, pad_hw)
    assert ref_cam.shape == (2, 1, 5, 1, 2) and mask.shape == (2, 1, 5, 1)
    assert ref_cam.dtype == torch.float32 and mask.dtype == torch.bool
    pixels = ref_cam[0, 0, :, 0] * torch.tensor([224.0, 128.0])  # normalized by the PADDED size
    assert torch.allclose(pixels[0], torch.tensor([100.0, 50.0]), atol=1e-2)
    assert torch.allclose(pixels[1], torch.tensor([50.0, 70.0]), atol=1e-2)
    assert torch.allclose(pixels[2], torch.tensor([210.0, 50.0]), atol=1e-2)
    assert mask[0, 0, :, 0].tolist() == [True, True, False, False, False]
    # Sample 1 uses its own camera: x_cam = +5 m -> u = 100 + 100*5/10 = 150.
    pixels_b = ref_cam[1, 0, 0, 0] * torch.tensor([224.0, 128.0])
    assert torch.allclose(pixels_b, torch.tensor([150.0, 50.0]), atol=1e-2)
    assert mask[1, 0, :, 0].tolist() == [True, True, False, False, False]  # u = 260 for pt 2
    # Per-sample image shapes: the second sample's valid width reaches past u = 210 for point 2.
    _, mask_ps = project_points_to_cameras(ref_3d.expand(2, -1, -1, -1), PC_RANGE,
                                           lidar2img[None, None].expand(2, 1, 4, 4).float(),
                                           torch.tensor([[100, 200], [100, 220]]), pad_hw)
    assert mask_ps[:, 0, 2, 0].tolist() == [False, True]


def test_project_points_fp32_under_autocast():
    ref_3d = pillar_points_3d(8, 8, 4, PC_RANGE, bs=1)
    lidar2img = pinhole_lidar2img(400.0, 320.0, 180.0, torch.eye(4, dtype=torch.float64))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = project_points_to_cameras(ref_3d.bfloat16(), PC_RANGE,
                                        lidar2img[None, None].bfloat16(), (360, 640), (384, 640))
    assert got[0].dtype == torch.float32
    # bf16 inputs (8-bit mantissa) are upcast once; the projection math itself is fp32.
    ref_bf = ref_3d.bfloat16().float()
    l2i_bf = lidar2img.bfloat16().double()
    exp_bf = project_points_to_cameras(ref_bf, PC_RANGE, l2i_bf[None, None], (360, 640),
                                       (384, 640))
    assert torch.equal(got[1], exp_bf[1])
    assert torch.allclose(got[0], exp_bf[0], atol=1e-5)
    assert got[1].any()


def test_project_points_shape_errors():
    ref_3d = pillar_points_3d(2, 2, 4, PC_RANGE, bs=2)
    with pytest.raises(ValueError, match='lidar2img must be'):
        project_points_to_cameras(ref_3d, PC_RANGE, torch.eye(4)[None, None], (10, 10), (10, 10))
    with pytest.raises(ValueError, match='img_shape'):
        project_points_to_cameras(ref_3d, PC_RANGE, torch.eye(4).expand(2, 1, 4, 4), (1, 2, 3),
                                  (10, 10))


def _load_sample():
    return json.loads((SAMPLE_DIR / 'sample.json').read_text())


def test_bev_cell_under_a_real_car_projects_into_its_camera():
    """nuScenes key frame: the BEV cell under a car, at the car's mid-height, lands inside the
    car's projected box in exactly the camera(s) the devkit says see the car."""
    from nuscenes.utils.data_classes import Box
    from nuscenes.utils.geometry_utils import BoxVisibility, box_in_image, view_points
    from pyquaternion import Quaternion

    sample = _load_sample()
    cams = ['CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT',
            'CAM_BACK_RIGHT']
    img_wh = (1600, 900)
    lidar2cam = [np.array(sample['cameras'][c]['lidar2cam']) for c in cams]
    cam2img = [np.array(sample['cameras'][c]['cam2img']) for c in cams]
    lidar2img = []
    for l2c, k in zip(lidar2cam, cam2img):
        k4 = np.eye(4)
        k4[:3, :3] = k
        lidar2img.append(k4 @ l2c)
    lidar2img = torch.from_numpy(np.stack(lidar2img))[None]  # (1, 6, 4, 4)

    def devkit_box_in_cam(box_json, cam_idx):
        lid = box_json['lidar']
        length, width, height = lid['size_lwh']
        centre = np.array(lid['bottom_center']) + np.array([0.0, 0.0, height / 2])
        box = Box(centre, [width, length, height], Quaternion(axis=[0, 0, 1], angle=lid['yaw']))
        box.rotate(Quaternion(matrix=lidar2cam[cam_idx][:3, :3], atol=1e-6))
        box.translate(lidar2cam[cam_idx][:3, 3])
        return box

    # A well-observed car seen fully by exactly one camera and not at all by the others.
    chosen = None
    for box_json in sample['boxes']:
        if box_json['name'] != 'car' or box_json['num_lidar_pts'] < 10:
            continue
        full = [box_in_image(devkit_box_in_cam(box_json, i), cam2img[i], img_wh,
                             BoxVisibility.ALL) for i in range(6)]
        anyv = [box_in_image(devkit_box_in_cam(box_json, i), cam2img[i], img_wh,
                             BoxVisibility.ANY) for i in range(6)]
        if sum(full) == 1 and sum(anyv) == 1:
            chosen = (box_json, full.index(True))
            break
    assert chosen is not None, 'no suitable car in the fixture'
    box_json, cam_idx = chosen
    lid = box_json['lidar']
    centre = np.array(lid['bottom_center']) + np.array([0.0, 0.0, lid['size_lwh'][2] / 2])

    # 200x200 BEV (0.512 m cells): the cell containing the car centre, at the centre height.
    bev = 200
    col = int((centre[0] - PC_RANGE[0]) / (PC_RANGE[3] - PC_RANGE[0]) * bev)
    row = int((centre[1] - PC_RANGE[1]) / (PC_RANGE[4] - PC_RANGE[1]) * bev)
    cell_xy = bev_grid_2d(bev, bev, 1)[0, row * bev + col, 0]
    z_n = (centre[2] - PC_RANGE[2]) / (PC_RANGE[5] - PC_RANGE[2])
    ref_3d = torch.cat((cell_xy, torch.tensor([z_n], dtype=torch.float32)))[None, None, None]
    # The exact centre too, for a pixel-precise comparison with the devkit's projection.
    ref_centre = normalize(torch.from_numpy(centre))[None, None, None]
    ref_cam, mask = project_points_to_cameras(torch.cat((ref_3d, ref_centre), dim=2), PC_RANGE,
                                              lidar2img, (900, 1600), (928, 1600))
    assert mask[0, :, 0, 0].tolist() == [i == cam_idx for i in range(6)]
    box = devkit_box_in_cam(box_json, cam_idx)
    corners_px = view_points(box.corners(), cam2img[cam_idx], normalize=True)[:2]
    centre_px = view_points(box.center[:, None], cam2img[cam_idx], normalize=True)[:2, 0]
    pixels = (ref_cam[0, cam_idx, :, 0].double() * torch.tensor([1600.0, 928.0])).numpy()
    np.testing.assert_allclose(pixels[1], centre_px, atol=0.05)
    assert corners_px[0].min() < pixels[0, 0] < corners_px[0].max()
    assert corners_px[1].min() < pixels[0, 1] < corners_px[1].max()


# ----------------------------------------------------------------------------- ego motion
def test_relative_pose_maps_prev_points_into_current_frame():
    torch.manual_seed(0)
    prev = torch.stack((rigid(0.3, (400.0, 1100.0, 0.5)), rigid(-2.0, (10.0, -3.0, 0.0))))
    cur = torch.stack((rigid(0.5, (402.0, 1101.0, 0.4)), rigid(-1.9, (11.0, -3.5, 0.1))))
    prev2cur = relative_pose(prev, cur)
    assert prev2cur.shape == (2, 4, 4)
    points_prev = torch.cat((torch.randn(2, 3, 7, dtype=torch.float64) * 20,
                             torch.ones(2, 1, 7, dtype=torch.float64)), dim=1)
    expected = torch.linalg.inv(cur) @ (prev @ points_prev)  # via the global frame
    assert torch.allclose(prev2cur @ points_prev, expected, atol=1e-9)
    identity = torch.eye(4, dtype=torch.float64).expand(2, 4, 4)
    assert torch.allclose(relative_pose(cur, cur), identity, atol=1e-12)
    with pytest.raises(ValueError, match='prev_lidar2global'):
        relative_pose(prev[0], cur)


def test_can_bus_deltas():
    cur = torch.arange(36, dtype=torch.float64).view(2, 18) + 100
    prev = cur.clone()
    prev[:, :3] -= torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64)
    cur[:, 17] = torch.tensor([2.0, 90.0], dtype=torch.float64)
    prev[:, 17] = torch.tensor([358.0, 80.0], dtype=torch.float64)
    prev[:, 3:17] += 1000.0  # must not leak into the result
    out = can_bus_deltas(cur, prev, torch.tensor([True, False]))
    assert out[0, :3].tolist() == [1.0, 2.0, 3.0]
    assert out[0, 17].item() == pytest.approx(4.0)  # 358 -> 2 deg is +4, not -356
    assert out[1, [0, 1, 2, 17]].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert torch.equal(out[:, 3:17], cur[:, 3:17])
    assert torch.equal(cur[:, 17], torch.tensor([2.0, 90.0], dtype=torch.float64))  # not mutated
    with pytest.raises(ValueError, match='prev_valid'):
        can_bus_deltas(cur, prev, torch.tensor([True]))


def _hot_bev(bev_h, bev_w, row, col, bs=1):
    bev = torch.zeros(bs, bev_h * bev_w, 1)
    bev[:, row * bev_w + col, 0] = 1.0
    return bev


def test_align_prev_bev_translation_moves_by_cells():
    # 6 rows x 10 cols over x in [-10, 10], y in [-6, 6]: 2 m cells on both axes.
    pc_range = (-10.0, -6.0, -5.0, 10.0, 6.0, 3.0)
    prev = _hot_bev(6, 10, row=2, col=5)
    # The ego drove 4 m forward (+x) and 2 m left (+y): static things move back by 2 cols, 1 row.
    prev2cur = torch.linalg.inv(rigid(0.0, (4.0, 2.0, 0.0)))[None]
    aligned, valid = align_prev_bev(prev, prev2cur, 6, 10, pc_range)
    assert aligned.shape == (1, 60, 1) and valid.shape == (1, 60)
    image = aligned[0, :, 0].view(6, 10)
    assert image[1, 3].item() == pytest.approx(1.0, abs=1e-5)
    assert image.sum().item() == pytest.approx(1.0, abs=1e-5)
    # Cells whose source lies beyond the previous BEV's +x / +y edges are invalid.
    valid_img = valid[0].view(6, 10)
    assert not valid_img[:, 8:].any() and not valid_img[5:, :].any()
    assert valid_img[:5, :8].all()
    # A batch of 2 with different motions: each sample uses its own pose.
    both = align_prev_bev(prev.expand(2, -1, -1), torch.cat((prev2cur, torch.eye(
        4, dtype=torch.float64)[None])), 6, 10, pc_range)[0]
    assert torch.allclose(both[0], aligned[0]) and torch.allclose(both[1], prev[0], atol=1e-6)


@pytest.mark.parametrize('bev_size', [10, 50, 150])
def test_align_prev_bev_rotation_about_ego(bev_size):
    """A +90 deg ego yaw: what was at (x, y) is now at (y, -x), for any BEV size."""
    pc_range = PC_RANGE
    cell = (pc_range[3] - pc_range[0]) / bev_size
    row, col = bev_size // 2 + bev_size // 5, bev_size // 2 + bev_size // 3
    x = pc_range[0] + (col + 0.5) * cell
    y = pc_range[1] + (row + 0.5) * cell
    prev = _hot_bev(bev_size, bev_size, row, col)
    prev2cur = torch.linalg.inv(rigid(math.pi / 2))[None]
    aligned, valid = align_prev_bev(prev, prev2cur, bev_size, bev_size, pc_range)
    new_x, new_y = y, -x
    new_col = round((new_x - pc_range[0]) / cell - 0.5)
    new_row = round((new_y - pc_range[1]) / cell - 0.5)
    image = aligned[0, :, 0].view(bev_size, bev_size)
    assert image[new_row, new_col].item() == pytest.approx(1.0, abs=1e-4)
    assert image.sum().item() == pytest.approx(1.0, abs=1e-4)
    assert valid.all()  # a square BEV centred on the ego rotates onto itself


def test_align_prev_bev_reproduces_a_linear_field():
    """Bilinear resampling is exact on a linear field: the aligned BEV at every interior current
    cell equals the field at that cell's position in the previous frame (30 deg + shift)."""
    bev_h, bev_w = 20, 30
    pc_range = (-30.0, -20.0, -5.0, 30.0, 20.0, 3.0)
    grid = denormalize_points(bev_grid_2d(bev_h, bev_w, 1, dtype=torch.float64)[0, :, 0],
                              pc_range)
    field = lambda xy: torch.stack((0.3 * xy[..., 0] - 0.7 * xy[..., 1] + 2.0,
                                    xy[..., 0] * 0.05), dim=-1)
    prev = field(grid)[None].float()
    cur_from_prev = rigid(math.radians(30), (3.0, -1.5, 0.2))
    aligned, valid = align_prev_bev(prev, cur_from_prev[None], bev_h, bev_w, pc_range)
    prev_from_cur = torch.linalg.inv(cur_from_prev)
    src = grid @ prev_from_cur[:2, :2].T + prev_from_cur[:2, 3]
    # Interior: at least one cell away from the previous BEV's border.
    inner = ((src[:, 0] > pc_range[0] + 2) & (src[:, 0] < pc_range[3] - 2) &
             (src[:, 1] > pc_range[1] + 2) & (src[:, 1] < pc_range[4] - 2))
    assert inner.sum() > 200
    assert torch.allclose(aligned[0, inner].double(), field(src)[inner], atol=1e-4)
    assert valid[0, inner].all()
    with pytest.raises(ValueError, match='prev_bev must be'):
        align_prev_bev(prev[:, :-1], cur_from_prev[None], bev_h, bev_w, pc_range)
