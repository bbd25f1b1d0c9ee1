"""Rasterise global-frame map geometry (polygons, polylines) into the BEV grid of a sample.

The grid is the one of B_t (see ``geometry/bev.py``): ``bev_h`` rows along LiDAR **y**,
``bev_w`` columns along LiDAR **x**, over ``pc_range = (x_min, y_min, z_min, x_max, y_max,
z_max)``; cell ``(row, col)`` covers ``x in [x_min + col * dx, x_min + (col + 1) * dx)`` and
``y in [y_min + row * dy, ...)`` with ``dx = (x_max - x_min) / bev_w``,
``dy = (y_max - y_min) / bev_h``, so a mask ``(bev_h, bev_w)`` flattened row-major lines up
with the flat index ``row * bev_w + col`` of B_t.

Map geometry lives on the ground plane, so the LiDAR pose is reduced to its planar part
(translation x, y and the yaw of the LiDAR x axis; roll / pitch of a few tenths of a degree
would move the map by centimetres). Labels are defined geometrically, not by a drawing
routine:

- polygon layers: a cell is set when its **centre** lies in the polygon (holes excluded);
- line layers: a cell is set when the line, widened to ``width`` metres, **overlaps** the
  cell, so lines thinner than a cell still leave a connected trace.
"""
from typing import Iterable, Sequence, Tuple, Union

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from .bev import check_pc_range

PolygonLike = Union[np.ndarray, Sequence[Sequence[float]], Polygon, MultiPolygon]
LineLike = Union[np.ndarray, Sequence[Sequence[float]], LineString, MultiLineString]


def planar_global2lidar(lidar2global: np.ndarray) -> np.ndarray:
    """The ground-plane part of ``inv(lidar2global)``.

    Args:
        lidar2global (ndarray): (4, 4) LiDAR -> global pose.

    Returns:
        ndarray: (3, 3) homogeneous 2-D transform, global (x, y) -> LiDAR (x, y), built from
        the LiDAR position and the yaw of its x axis in the global frame.
    """
    pose = np.asarray(lidar2global, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f'rasterize.py: lidar2global must be (4, 4), got {pose.shape}')
    yaw = np.arctan2(pose[1, 0], pose[0, 0])
    c, s = np.cos(yaw), np.sin(yaw)
    rot_t = np.array([[c, s], [-s, c]])  # R(yaw)^T
    out = np.eye(3)
    out[:2, :2] = rot_t
    out[:2, 2] = -rot_t @ pose[:2, 3]
    return out


def global_to_grid(points: np.ndarray, lidar2global: np.ndarray, bev_h: int, bev_w: int,
                   pc_range: Sequence[float]) -> np.ndarray:
    """Global (x, y) points to continuous grid coordinates of a sample's BEV.

    Args:
        points (ndarray): (N, 2) global x, y in metres.
        lidar2global (ndarray): (4, 4) pose of the sample's LiDAR.
        bev_h (int), bev_w (int): grid size.
        pc_range (sequence of 6 floats): the BEV range in the LiDAR frame.

    Returns:
        ndarray: (N, 2) ``(u, v)`` with ``u = (x - x_min) / dx`` (column axis) and
        ``v = (y - y_min) / dy`` (row axis); cell ``(row, col)`` spans ``[col, col + 1) x
        [row, row + 1)`` and its centre is ``(col + 0.5, row + 0.5)``.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f'rasterize.py: points must be (N, 2), got {pts.shape}')
    m = planar_global2lidar(lidar2global)
    lidar = pts @ m[:2, :2].T + m[:2, 2]
    return lidar_to_grid(lidar, bev_h, bev_w, pc_range)


def lidar_to_grid(points: np.ndarray, bev_h: int, bev_w: int,
                  pc_range: Sequence[float]) -> np.ndarray:
    """LiDAR-frame (x, y) in metres (N, 2) -> continuous grid (u, v) (N, 2), as above."""
    pc = check_pc_range(pc_range)
    scale = np.array([bev_w / (pc[3] - pc[0]), bev_h / (pc[4] - pc[1])])
    return (np.asarray(points, dtype=np.float64) - np.array(pc[:2])) * scale


def bev_patch_in_global(lidar2global: np.ndarray, pc_range: Sequence[float]
                        ) -> Tuple[float, float, float, float]:
    """Axis-aligned global bounding box of a sample's BEV rectangle (for map queries).

    Returns:
        tuple: ``(x_min, y_min, x_max, y_max)`` in the global frame.
    """
    pc = check_pc_range(pc_range)
    corners = np.array([[pc[0], pc[1]], [pc[3], pc[1]], [pc[3], pc[4]], [pc[0], pc[4]]])
    lidar2global_2d = np.linalg.inv(planar_global2lidar(lidar2global))
    glob = corners @ lidar2global_2d[:2, :2].T + lidar2global_2d[:2, 2]
    lo, hi = glob.min(0), glob.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _global_to_lidar_geom(geom: BaseGeometry, lidar2global: np.ndarray) -> BaseGeometry:
    m = planar_global2lidar(lidar2global)
    return affinity.affine_transform(geom, [m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[0, 2], m[1, 2]])


def _lidar_to_grid_geom(geom: BaseGeometry, bev_h: int, bev_w: int,
                        pc_range: Sequence[float]) -> BaseGeometry:
    pc = check_pc_range(pc_range)
    sx, sy = bev_w / (pc[3] - pc[0]), bev_h / (pc[4] - pc[1])
    return affinity.affine_transform(geom, [sx, 0.0, 0.0, sy, -pc[0] * sx, -pc[1] * sy])


def _as_polygon(poly: PolygonLike, index: int) -> BaseGeometry:
    if isinstance(poly, (Polygon, MultiPolygon)):
        geom = poly
    else:
        ring = np.asarray(poly, dtype=np.float64)
        if ring.ndim != 2 or ring.shape[1] != 2 or len(ring) < 3:
            raise ValueError(f'rasterize.py: polygon {index} must be (N >= 3, 2) vertices, '
                             f'got shape {ring.shape}')
        geom = Polygon(ring)
    return geom if geom.is_valid else shapely.make_valid(geom)


def _as_line(line: LineLike, index: int) -> BaseGeometry:
    if isinstance(line, (LineString, MultiLineString)):
        return line
    pts = np.asarray(line, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
        raise ValueError(f'rasterize.py: polyline {index} must be (N >= 2, 2) points, got '
                         f'shape {pts.shape}')
    return LineString(pts)


def _cell_window(geom: BaseGeometry, bev_h: int, bev_w: int):
    """Clip the grid-frame geometry to the grid and prepare it for fast predicates.

    Returns:
        tuple | None: ``(geom, rows, cols)``, the clipped geometry and the row / column
        indices of the cells its bounds can touch; None when it misses the grid.
    """
    # A one-cell margin keeps the clip's new edges off the cells that are tested.
    geom = shapely.clip_by_rect(geom, -1.0, -1.0, bev_w + 1.0, bev_h + 1.0)
    if geom.is_empty:
        return None
    shapely.prepare(geom)
    u0, v0, u1, v1 = geom.bounds
    c0, c1 = max(int(np.floor(u0)), 0), min(int(np.ceil(u1)), bev_w)
    r0, r1 = max(int(np.floor(v0)), 0), min(int(np.ceil(v1)), bev_h)
    if c0 >= c1 or r0 >= r1:
        return None
    return geom, np.arange(r0, r1), np.arange(c0, c1)


def rasterize_polygons(polygons: Iterable[PolygonLike], lidar2global: np.ndarray, bev_h: int,
                       bev_w: int, pc_range: Sequence[float]) -> np.ndarray:
    """Cells whose centre lies inside any of the polygons.

    Args:
        polygons (iterable): global-frame polygons, each an (N, 2) vertex array (exterior
            ring, open or closed) or a shapely (Multi)Polygon (holes are respected).
        lidar2global (ndarray): (4, 4) pose of the sample's LiDAR.
        bev_h (int), bev_w (int): grid size; pc_range: the BEV range (6 floats).

    Returns:
        ndarray: (bev_h, bev_w) bool, row = LiDAR y, column = LiDAR x.
    """
    mask = np.zeros((bev_h, bev_w), dtype=bool)
    for i, poly in enumerate(polygons):
        geom = _lidar_to_grid_geom(_global_to_lidar_geom(_as_polygon(poly, i), lidar2global),
                                   bev_h, bev_w, pc_range)
        window = _cell_window(geom, bev_h, bev_w)
        if window is None:
            continue
        geom, rows, cols = window
        v, u = np.meshgrid(rows + 0.5, cols + 0.5, indexing='ij')
        inside = shapely.intersects_xy(geom, u, v)  # centre inside or on the boundary
        mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] |= inside
    return mask


def rasterize_polylines(lines: Iterable[LineLike], lidar2global: np.ndarray, bev_h: int,
                        bev_w: int, pc_range: Sequence[float], width: float) -> np.ndarray:
    """Cells overlapped by any polyline widened to ``width`` metres.

    Args:
        lines (iterable): global-frame polylines, each an (N, 2) point array or a shapely
            (Multi)LineString.
        lidar2global (ndarray): (4, 4) pose of the sample's LiDAR.
        bev_h (int), bev_w (int): grid size; pc_range: the BEV range (6 floats).
        width (float): line width in metres (>= 0; 0 marks the cells the line crosses).

    Returns:
        ndarray: (bev_h, bev_w) bool.
    """
    if width < 0:
        raise ValueError(f'rasterize.py: line width must be >= 0 metres, got {width}')
    mask = np.zeros((bev_h, bev_w), dtype=bool)
    for i, line in enumerate(lines):
        geom = _global_to_lidar_geom(_as_line(line, i), lidar2global)
        if width > 0:  # widen in metres, before the (possibly anisotropic) grid scaling
            geom = geom.buffer(width / 2, cap_style='flat')
        geom = _lidar_to_grid_geom(geom, bev_h, bev_w, pc_range)
        window = _cell_window(geom, bev_h, bev_w)
        if window is None:
            continue
        geom, rows, cols = window
        v, u = np.meshgrid(rows.astype(np.float64), cols.astype(np.float64), indexing='ij')
        cells = shapely.box(u, v, u + 1.0, v + 1.0)
        hit = shapely.intersects(geom, cells)
        mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] |= hit
    return mask
