"""geometry/rasterize.py: map polygons and polylines on the BEV grid, through the full pose."""
import numpy as np
import pytest
from shapely.geometry import LineString, Point, Polygon

from projects.bevformer.geometry.rasterize import (bev_patch_in_global, global_to_grid,
                                                   rasterize_polygons, rasterize_polylines)
from tests.test_bevformer.bev_seg_helpers import PC_RANGE, cell_centres_global


def pose(x: float, y: float, yaw_deg: float, z: float = 0.0) -> np.ndarray:
    yaw = np.radians(yaw_deg)
    out = np.eye(4)
    out[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    out[:3, 3] = (x, y, z)
    return out


def test_divider_at_known_offset_with_yaw_90():
    """Ego at (100, 200) heading +y (yaw 90 deg): a global line 11 m to the ego's left
    (x = 89, along global y) lies at LiDAR y = +11 along LiDAR x -> one row, every column."""
    l2g = pose(100.0, 200.0, 90.0)
    line = np.array([[89.0, 100.0], [89.0, 300.0]])
    np.testing.assert_allclose(global_to_grid(np.array([[89.0, 200.0]]), l2g, 32, 32, PC_RANGE),
                               [[16.0, (11 + 51.2) / 3.2]])
    mask = rasterize_polylines([line], l2g, 32, 32, PC_RANGE, width=1.0)
    expected = np.zeros((32, 32), bool)
    expected[19, :] = True  # row 19 spans y in [9.6, 12.8), the line [10.5, 11.5]
    np.testing.assert_array_equal(mask, expected)
    # A 4 m wide line covers y in [9, 13]: rows 18 (6.4-9.6), 19 and 20 (12.8-16).
    wide = rasterize_polylines([line], l2g, 32, 32, PC_RANGE, width=4.0)
    assert set(np.nonzero(wide.any(1))[0]) == {18, 19, 20} and wide[18:21].all()
    # Non-square grid: rows still follow LiDAR y, columns LiDAR x.
    mask_hw = rasterize_polylines([line], l2g, 16, 64, PC_RANGE, width=1.0)
    assert np.nonzero(mask_hw.any(1))[0].tolist() == [9] and mask_hw[9].all()  # 6.4 m rows


def test_polygon_cells_are_those_whose_centre_is_inside():
    """Parity with shapely point-in-polygon on the cell centres mapped through the full pose
    (here with a LiDAR mounted at yaw -90 deg on a yawed ego, and a polygon with a hole)."""
    lidar2ego = pose(0.9, 0.0, -90.0, z=1.8)
    ego2global = pose(400.0, 1100.0, 33.0)
    l2g = ego2global @ lidar2ego
    outer = np.array([[380.0, 1080.0], [440.0, 1090.0], [430.0, 1140.0], [385.0, 1125.0]])
    hole = np.array([[400.0, 1100.0], [412.0, 1100.0], [412.0, 1110.0], [400.0, 1110.0]])
    poly = Polygon(outer, [hole])
    mask = rasterize_polygons([poly], l2g, 40, 24, PC_RANGE)
    centres = cell_centres_global(l2g, 40, 24)
    ref = np.array([[poly.contains(Point(*c)) for c in row] for row in centres])
    np.testing.assert_array_equal(mask, ref)
    assert 50 < mask.sum() < mask.size and not mask[tuple(np.argwhere(ref == 0)[0])]
    # A plain vertex array (exterior only) fills the hole.
    filled = rasterize_polygons([outer], l2g, 40, 24, PC_RANGE)
    assert filled.sum() > mask.sum() and (filled | mask).sum() == filled.sum()
    # Far away: nothing.
    assert not rasterize_polygons([outer + 1000.0], l2g, 40, 24, PC_RANGE).any()


def test_line_cells_are_those_the_widened_line_overlaps():
    l2g = pose(-20.0, 7.0, 200.0)
    line = np.array([[-60.0, -10.0], [-10.0, 20.0], [25.0, 22.0]])
    mask = rasterize_polylines([line], l2g, 20, 20, PC_RANGE, width=2.0)
    band = LineString(line).buffer(1.0, cap_style='flat')
    dx = dy = 102.4 / 20
    ref = np.zeros_like(mask)
    for r in range(20):
        for c in range(20):
            corners = np.array([[PC_RANGE[0] + c * dx, PC_RANGE[1] + r * dy],
                                [PC_RANGE[0] + (c + 1) * dx, PC_RANGE[1] + r * dy],
                                [PC_RANGE[0] + (c + 1) * dx, PC_RANGE[1] + (r + 1) * dy],
                                [PC_RANGE[0] + c * dx, PC_RANGE[1] + (r + 1) * dy]])
            glob = np.c_[corners, np.zeros(4), np.ones(4)] @ l2g.T
            ref[r, c] = Polygon(glob[:, :2]).intersects(band)
    np.testing.assert_array_equal(mask, ref)
    assert mask.sum() > 10


def test_bad_geometry_raises():
    with pytest.raises(ValueError, match='polygon 1'):
        rasterize_polygons([np.zeros((3, 2)) + [[0, 0], [1, 0], [0, 1]], np.zeros((2, 2))],
                           np.eye(4), 8, 8, PC_RANGE)
    with pytest.raises(ValueError, match='width'):
        rasterize_polylines([], np.eye(4), 8, 8, PC_RANGE, width=-1)
    with pytest.raises(ValueError, match=r'\(4, 4\)'):
        rasterize_polylines([[[0, 0], [1, 1]]], np.eye(3), 8, 8, PC_RANGE, width=1)


def test_bev_patch_in_global_bounds_the_grid():
    l2g = pose(10.0, -5.0, 30.0)
    x0, y0, x1, y1 = bev_patch_in_global(l2g, PC_RANGE)
    centres = cell_centres_global(l2g, 8, 8).reshape(-1, 2)
    assert (centres >= [x0, y0]).all() and (centres <= [x1, y1]).all()
    half = 51.2 * (np.cos(np.radians(30)) + np.sin(np.radians(30)))
    np.testing.assert_allclose([x0, y0, x1, y1], [10 - half, -5 - half, 10 + half, -5 + half])
