"""The road layout of a scene: a curved road axis, lanes, walkways, an optional crossing road
with zebra crossings, as polygons / polylines in the global frame."""
from typing import List, Optional, Tuple

import numpy as np

ROAD_HALF_WIDTH = 7.0  # two 3.5 m lanes each way
LANE_WIDTH = 3.5
WALKWAY_WIDTH = 3.0
EGO_LATERAL = -LANE_WIDTH / 2  # the ego drives in the inner lane going +s (right-hand traffic)


class Road:
    """A road axis parametrised by arc length ``s`` with lateral offset ``d`` (left > 0).

    Args:
        start (ndarray): (2,) global xy at ``s = s_min``.
        heading (float): heading at ``s_min`` (rad).
        s_min, s_max (float): extent of the axis (m).
        rng (Generator): draws the curvature profile.
    """

    def __init__(self, start: np.ndarray, heading: float, s_min: float, s_max: float,
                 rng: np.random.Generator, ds: float = 0.5) -> None:
        self.s = np.arange(s_min, s_max + ds, ds)
        curvature = np.zeros_like(self.s)
        pos = s_min
        while pos < s_max:  # straights and arcs of radius 60-250 m
            length = rng.uniform(25.0, 70.0)
            kappa = 0.0 if rng.random() < 0.5 else rng.choice([-1, 1]) / rng.uniform(60, 250)
            curvature[(self.s >= pos) & (self.s < pos + length)] = kappa
            pos += length
        self.heading = heading + np.concatenate([[0.0], np.cumsum(curvature[:-1] * ds)])
        self.x = start[0] + np.concatenate([[0.0], np.cumsum(np.cos(self.heading[:-1]) * ds)])
        self.y = start[1] + np.concatenate([[0.0], np.cumsum(np.sin(self.heading[:-1]) * ds)])

    def point(self, s, d=0.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Global ``(x, y, heading)`` at arc length ``s`` and lateral offset ``d`` (arrays)."""
        s = np.clip(s, self.s[0], self.s[-1])
        h = np.interp(s, self.s, self.heading)
        x = np.interp(s, self.s, self.x) - np.sin(h) * d
        y = np.interp(s, self.s, self.y) + np.cos(h) * d
        return x, y, h

    def polyline(self, d: float, s0: Optional[float] = None, s1: Optional[float] = None,
                 step: float = 1.0) -> np.ndarray:
        s0 = self.s[0] if s0 is None else s0
        s1 = self.s[-1] if s1 is None else s1
        s = np.arange(s0, s1 + 1e-6, step)
        x, y, _ = self.point(s, d)
        return np.stack([x, y], -1)


def rectangle(cx: float, cy: float, heading: float, length: float, width: float) -> np.ndarray:
    """(4, 2) corners of a rectangle with ``length`` along ``heading``."""
    c, s = np.cos(heading), np.sin(heading)
    local = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]]) * [length, width]
    return local @ np.array([[c, s], [-s, c]]) + [cx, cy]


def build_layout(road: Road, cross_s: Optional[float]) -> dict:
    """Road layout (global frame) as lists of polygons / polylines of [x, y]."""
    from shapely.geometry import LineString, Polygon
    from shapely.ops import unary_union

    axis = LineString(road.polyline(0.0, step=2.0))
    drivable = [axis.buffer(ROAD_HALF_WIDTH, cap_style='flat')]
    outer = [axis.buffer(ROAD_HALF_WIDTH + WALKWAY_WIDTH, cap_style='flat')]
    gaps = []  # (s0, s1) of the main road without markings (the intersection)
    crossings = []
    cross_dividers = []
    if cross_s is not None:
        cx, cy, h = road.point(cross_s)
        ch = h + np.pi / 2
        half_len = 90.0
        cross = LineString([(cx - np.cos(ch) * half_len, cy - np.sin(ch) * half_len),
                            (cx + np.cos(ch) * half_len, cy + np.sin(ch) * half_len)])
        drivable.append(cross.buffer(ROAD_HALF_WIDTH, cap_style='flat'))
        outer.append(cross.buffer(ROAD_HALF_WIDTH + WALKWAY_WIDTH, cap_style='flat'))
        margin = ROAD_HALF_WIDTH + WALKWAY_WIDTH / 2
        gaps.append((cross_s - margin, cross_s + margin))
        for sign in (-1, 1):  # zebra crossings on the main road, both sides of the junction
            px, py, ph = road.point(cross_s + sign * (margin + 2.5))
            crossings.append(rectangle(float(px), float(py), float(ph), 4.0, 2 * ROAD_HALF_WIDTH))
            # and across the crossing road
            qx = cx + np.cos(ch) * sign * (margin + 2.5)
            qy = cy + np.sin(ch) * sign * (margin + 2.5)
            crossings.append(rectangle(qx, qy, ch, 4.0, 2 * ROAD_HALF_WIDTH))
            start = margin if sign > 0 else -half_len
            stop = half_len if sign > 0 else -margin
            cross_dividers.append(np.array(
                [(cx + np.cos(ch) * t, cy + np.sin(ch) * t) for t in np.arange(start, stop, 2.0)]))
    drivable_u = unary_union(drivable)
    walkway_u = unary_union(outer).difference(drivable_u)

    def polys(geom) -> List[np.ndarray]:
        geoms = getattr(geom, 'geoms', [geom])
        return [np.asarray(g.exterior.coords)[:-1] for g in geoms if isinstance(g, Polygon)
                and not g.is_empty]

    def cut(d: float) -> List[np.ndarray]:
        pieces, s0 = [], road.s[0]
        for g0, g1 in gaps:
            pieces.append(road.polyline(d, s0, g0))
            s0 = g1
        pieces.append(road.polyline(d, s0, road.s[-1]))
        return [p for p in pieces if len(p) >= 2]

    return dict(
        drivable_area=polys(drivable_u),
        walkway=[np.asarray(g.exterior.coords)[:-1] for g in getattr(walkway_u, 'geoms',
                                                                     [walkway_u])
                 if isinstance(g, Polygon) and not g.is_empty],
        lane_divider=cut(-LANE_WIDTH) + cut(LANE_WIDTH),
        road_divider=cut(0.0) + cross_dividers,
        ped_crossing=crossings)


def layout_to_json(layout: dict) -> dict:
    return {k: [np.round(np.asarray(p), 3).tolist() for p in v] for k, v in layout.items()}
