"""A synthetic nuScenes dataroot: the real v1.0 layout, rendered from a simple 3D world.

:func:`generate_synthetic_nuscenes` writes

- ``<root>/<version>/*.json``: all 13 nuScenes tables (loadable by ``nuscenes.NuScenes``),
- ``<root>/maps/<token>.png`` (a placeholder map mask) and ``<root>/maps/synthetic_layout.json``
  (per-scene road layout in the global frame: drivable area, walkways, lane / road dividers,
  pedestrian crossings),
- ``<root>/samples/CAM_*/*.jpg``: six images per key frame from the real nuScenes camera rig
  (intrinsics scaled with the image size),
- ``<root>/samples/LIDAR_TOP/*.pcd.bin``: float32 ``(x, y, z, intensity, ring)`` points of a
  simulated 32-beam LiDAR (ray cast against the same world),
- ``<root>/can_bus/scene-XXXX_pose.json``: 50 Hz CAN-bus pose messages.

The world of a scene: a road (a curved axis with two lanes each way, sidewalks, optionally a
crossing road with zebra crossings) and objects of all 10 detection classes with
class-typical sizes and appearance, parked or moving along the road. The ego car drives
along the road with a varying speed. Images are rendered by an exact per-pixel ray cast
against the oriented boxes and the ground plane, so the boxes are correctly occluded, and
moving objects are rendered at each camera's own timestamp. Everything is deterministic
given ``seed``.
"""
import hashlib
import json
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from projects.bevformer.constants import CAMERAS, CLASSES

# Deliberately independent of geometry/: this generator makes the ground truth that
# geometry/boxes.py, geometry/camera.py, the info converter and the metric are checked
# against, so it keeps its own quaternion and pose maths (_yaw_quat, _quat_to_mat, _pose), box
# corners (_corners) and attribute rule (_Object.attribute). Were they shared, a bug there (a
# transposed rotation, a flipped yaw) would move the rendered images, the tables and the
# converted infos together and pass every check. Only names (CAMERAS, CLASSES) are shared.
# ------------------------------------------------------------------------------ constants

# The nuScenes rig of log n015-2018-07-24-11-22-45 (the team's facts sheet on nuScenes):
# channel -> (translation sensor->ego, rotation (w, x, y, z), f, cx, cy) at 1600x900.
RIG = {
    'CAM_FRONT': ((1.70079118954, 0.0159456324149, 1.51095763913),
                  (0.4998015430569128, -0.5030316162024876, 0.4997798114386805,
                   -0.49737083824542755), 1266.417203046554, 816.2670197447984,
                  491.50706579294757),
    'CAM_FRONT_RIGHT': ((1.5508477543, -0.493404796419, 1.49574800619),
                        (0.2060347966337182, -0.2026940577919598, 0.6824507824531167,
                         -0.6713610884174485), 1260.8474446004698, 807.968244525554,
                        495.3344268742088),
    'CAM_FRONT_LEFT': ((1.52387798135, 0.494631336551, 1.50932822144),
                       (0.6757265034669446, -0.6736266522251881, 0.21214015046209478,
                        -0.21122827103904068), 1272.5979470598488, 826.6154927353808,
                       479.75165386361925),
    'CAM_BACK': ((0.0283260309358, 0.00345136761476, 1.57910346144),
                 (0.5037872666382278, -0.49740249788611096, -0.4941850223835201,
                  0.5045496097725578), 809.2209905677063, 829.2196003259838,
                 481.77842384512485),
    'CAM_BACK_LEFT': ((1.03569100218, 0.484795032713, 1.59097014818),
                      (0.6924185592174665, -0.7031619420114925, -0.11648342771943819,
                       0.11203317912370753), 1256.7414812095406, 792.1125740759628,
                      492.7757465151356),
    'CAM_BACK_RIGHT': ((1.0148780988, -0.480568219723, 1.56239545128),
                       (0.12280980120078765, -0.132400842670559, -0.7004305821388234,
                        0.690496031265798), 1259.5137405846733, 807.2529053838625,
                       501.19579884916527),
}
LIDAR_TOP = ((0.943713, 0.0, 1.84023),
             (0.7077955119163518, -0.006492242056004365, 0.010646214713995808,
              -0.7063073142877817))
FULL_WIDTH, FULL_HEIGHT = 1600, 900
# Camera timestamp minus LiDAR timestamp (µs) in the real first sample of scene-0061: the
# cameras fire as the spinning LiDAR sweeps past them.
CAMERA_TIME_OFFSETS_US = {'CAM_FRONT': -35491, 'CAM_FRONT_RIGHT': -27612,
                          'CAM_FRONT_LEFT': -43107, 'CAM_BACK': -10426,
                          'CAM_BACK_LEFT': -528, 'CAM_BACK_RIGHT': -20058}

# The 23 nuScenes categories and 8 attributes (names as in the real tables).
CATEGORIES = (
    'animal', 'human.pedestrian.adult', 'human.pedestrian.child',
    'human.pedestrian.construction_worker', 'human.pedestrian.personal_mobility',
    'human.pedestrian.police_officer', 'human.pedestrian.stroller',
    'human.pedestrian.wheelchair', 'movable_object.barrier', 'movable_object.debris',
    'movable_object.pushable_pullable', 'movable_object.trafficcone',
    'static_object.bicycle_rack', 'vehicle.bicycle', 'vehicle.bus.bendy', 'vehicle.bus.rigid',
    'vehicle.car', 'vehicle.construction', 'vehicle.emergency.ambulance',
    'vehicle.emergency.police', 'vehicle.motorcycle', 'vehicle.trailer', 'vehicle.truck')
ATTRIBUTES = ('cycle.with_rider', 'cycle.without_rider', 'pedestrian.moving',
              'pedestrian.sitting_lying_down', 'pedestrian.standing', 'vehicle.moving',
              'vehicle.parked', 'vehicle.stopped')
VISIBILITY_LEVELS = (('1', 'v0-40'), ('2', 'v40-60'), ('3', 'v60-80'), ('4', 'v80-100'))

MINI_TRAIN = ('scene-0061', 'scene-0553', 'scene-0655', 'scene-0757', 'scene-0796',
              'scene-1077', 'scene-1094', 'scene-1100')
MINI_VAL = ('scene-0103', 'scene-0916')


@dataclass(frozen=True)
class ClassSpec:
    """How objects of one class look and behave."""
    category: str
    size_lwh: Tuple[float, float, float]
    moving_prob: float
    speed: Tuple[float, float]  # m/s range when moving
    colour: Tuple[float, float, float]  # RGB albedo in [0, 1]
    reflectivity: float  # LiDAR intensity scale in [0, 1]
    weight: float  # relative spawn frequency


CLASS_SPECS: Dict[str, ClassSpec] = {
    'car': ClassSpec('vehicle.car', (4.6, 1.95, 1.7), 0.55, (3.0, 13.0),
                     (0.16, 0.30, 0.78), 0.5, 0.26),
    'truck': ClassSpec('vehicle.truck', (6.9, 2.5, 2.9), 0.4, (3.0, 10.0),
                       (0.20, 0.55, 0.24), 0.5, 0.08),
    'construction_vehicle': ClassSpec('vehicle.construction', (6.4, 2.8, 3.1), 0.15,
                                      (1.0, 4.0), (0.95, 0.75, 0.08), 0.5, 0.05),
    'bus': ClassSpec('vehicle.bus.rigid', (11.0, 2.95, 3.4), 0.5, (3.0, 10.0),
                     (0.80, 0.12, 0.10), 0.5, 0.05),
    'trailer': ClassSpec('vehicle.trailer', (11.5, 2.9, 3.8), 0.2, (3.0, 8.0),
                         (0.78, 0.78, 0.82), 0.5, 0.05),
    'barrier': ClassSpec('movable_object.barrier', (0.5, 2.5, 1.0), 0.0, (0.0, 0.0),
                         (0.85, 0.10, 0.10), 0.8, 0.11),
    'motorcycle': ClassSpec('vehicle.motorcycle', (2.1, 0.8, 1.5), 0.5, (3.0, 12.0),
                            (0.45, 0.10, 0.55), 0.6, 0.06),
    'bicycle': ClassSpec('vehicle.bicycle', (1.7, 0.6, 1.3), 0.5, (2.0, 6.0),
                         (0.10, 0.70, 0.75), 0.6, 0.07),
    'pedestrian': ClassSpec('human.pedestrian.adult', (0.73, 0.67, 1.75), 0.6, (0.6, 1.8),
                            (0.95, 0.45, 0.65), 0.4, 0.17),
    'traffic_cone': ClassSpec('movable_object.trafficcone', (0.41, 0.41, 1.0), 0.0,
                              (0.0, 0.0), (1.00, 0.45, 0.00), 0.9, 0.10),
}
# Objects outside the 10 detection classes (label -1 in the infos).
OTHER_SPECS: Dict[str, ClassSpec] = {
    'pushable_pullable': ClassSpec('movable_object.pushable_pullable', (0.7, 0.6, 1.0), 0.0,
                                   (0.0, 0.0), (0.45, 0.42, 0.38), 0.3, 1.0),
}

VEHICLES = ('car', 'truck', 'construction_vehicle', 'bus', 'trailer')
CYCLES = ('motorcycle', 'bicycle')

ROAD_HALF_WIDTH = 7.0  # two 3.5 m lanes each way
LANE_WIDTH = 3.5
WALKWAY_WIDTH = 3.0
EGO_LATERAL = -LANE_WIDTH / 2  # the ego drives in the inner lane going +s (right-hand traffic)
ANNOTATION_RANGE = 60.0  # objects are annotated while within this distance of the ego (m)
SAMPLE_PERIOD_US = 500_000  # key frames at 2 Hz
GROUND_INTENSITY = 8.0  # LiDAR intensity of ground returns (objects: 255 * reflectivity)
FIRST_TIMESTAMP_US = 1532402927647951  # the real first sample of scene-0061


def _token(*parts) -> str:
    """A deterministic 32-hex token (nuScenes tokens look the same)."""
    return hashlib.md5('/'.join(str(p) for p in parts).encode()).hexdigest()


def _yaw_quat(yaw: float) -> List[float]:
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def _quat_to_mat(q: Sequence[float]) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _pose(translation: Sequence[float], rotation: Sequence[float]) -> np.ndarray:
    mat = np.eye(4)
    mat[:3, :3] = _quat_to_mat(rotation)
    mat[:3, 3] = translation
    return mat


# ------------------------------------------------------------------------------- the road
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


def _rect(cx: float, cy: float, heading: float, length: float, width: float) -> np.ndarray:
    """(4, 2) corners of a rectangle with ``length`` along ``heading``."""
    c, s = np.cos(heading), np.sin(heading)
    local = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]]) * [length, width]
    return local @ np.array([[c, s], [-s, c]]) + [cx, cy]


def _build_layout(road: Road, cross_s: Optional[float]) -> dict:
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
            crossings.append(_rect(float(px), float(py), float(ph), 4.0, 2 * ROAD_HALF_WIDTH))
            # and across the crossing road
            qx = cx + np.cos(ch) * sign * (margin + 2.5)
            qy = cy + np.sin(ch) * sign * (margin + 2.5)
            crossings.append(_rect(qx, qy, ch, 4.0, 2 * ROAD_HALF_WIDTH))
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


def _layout_to_json(layout: dict) -> dict:
    return {k: [np.round(np.asarray(p), 3).tolist() for p in v] for k, v in layout.items()}


# --------------------------------------------------------------------------- the texture
class GroundTexture:
    """The ground (global z = 0) baked into a top-down RGB texture from the layout."""

    def __init__(self, layout: dict, rng: np.random.Generator, res: float = 0.15,
                 margin: float = 40.0, max_texels: int = 5_000_000) -> None:
        import cv2
        pts = np.concatenate([np.concatenate(v) for v in layout.values() if len(v)])
        lo, hi = pts.min(0) - margin, pts.max(0) + margin
        res = max(res, float(np.sqrt((hi - lo).prod() / max_texels)))
        self.origin, self.res = lo, res
        w, h = (np.ceil((hi - lo) / res)).astype(int) + 1
        self.grass = np.array([0.33, 0.40, 0.22])
        tex = np.empty((h, w, 3), np.float32)
        tex[:] = self.grass
        low = cv2.resize(rng.normal(0, 1, (max(h // 40, 2), max(w // 40, 2))).astype(np.float32),
                         (w, h), interpolation=cv2.INTER_LINEAR)

        def fill(polys, colour) -> None:
            for p in polys:
                cv2.fillPoly(tex, [self._px(p)], colour, lineType=cv2.LINE_AA, shift=2)

        fill(layout['walkway'], (0.62, 0.61, 0.58))
        fill(layout['drivable_area'], (0.27, 0.27, 0.29))
        tex += low[..., None] * 0.035 + 0.025 * rng.standard_normal((h, w, 1), dtype=np.float32)
        for line in layout['lane_divider']:  # dashed white: 3 m dash, 6 m gap
            seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
            arc = np.concatenate([[0.0], np.cumsum(seg)])
            on = (arc % 9.0) < 3.0
            for i in range(len(line) - 1):
                if on[i]:
                    self._line(tex, line[i:i + 2], (0.9, 0.9, 0.88), 0.15)
        for line in layout['road_divider']:  # solid yellow
            self._line(tex, line, (0.85, 0.7, 0.15), 0.2)
        for poly in layout['ped_crossing']:  # zebra: bars along the crossing's long side
            a, b, c = poly[0], poly[1], poly[2]
            across = c - b  # rows of _rect: along the length, then across the width
            n_bars = int(np.linalg.norm(across) / 1.0)
            for i in range(n_bars):
                t0, t1 = i / n_bars, (i + 0.5) / n_bars
                bar = np.array([a + across * t0, b + across * t0, b + across * t1,
                                a + across * t1])
                cv2.fillPoly(tex, [self._px(bar)], (0.92, 0.92, 0.9), lineType=cv2.LINE_AA,
                             shift=2)
        self.tex = np.clip(tex * 255, 0, 255).astype(np.uint8)

    def _px(self, pts: np.ndarray) -> np.ndarray:
        return np.round((np.asarray(pts) - self.origin) / self.res * 4).astype(np.int32)

    def _line(self, tex: np.ndarray, pts: np.ndarray, colour, width: float) -> None:
        import cv2
        cv2.polylines(tex, [self._px(pts)], False, colour,
                      thickness=max(1, int(round(width / self.res))), lineType=cv2.LINE_AA,
                      shift=2)

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(N,) global xy -> (N, 3) float colours (nearest texel; grass outside)."""
        col = np.round((x - self.origin[0]) / self.res).astype(np.int64)
        row = np.round((y - self.origin[1]) / self.res).astype(np.int64)
        h, w = self.tex.shape[:2]
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        out = np.empty((len(x), 3), np.float32)
        out[:] = self.grass
        out[inside] = self.tex[row[inside], col[inside]] / 255.0
        return out


# ------------------------------------------------------------------------- ray casting
def ray_box_intersect(origin: np.ndarray, dirs: np.ndarray, center: np.ndarray, yaw: float,
                      half: np.ndarray):
    """Exact ray / oriented-box intersection (slab test in the box frame).

    Args:
        origin (ndarray): (3,) ray origin (global).
        dirs (ndarray): (N, 3) ray directions (global, any length).
        center (ndarray): (3,) box geometric centre; yaw: rotation about z; half: (3,)
            half extents along the box's x (length), y (width), z.

    Returns:
        tuple: ``t`` (N,) ray parameter of the entry point (inf when missed), ``axis`` (N,)
        the box axis of the entered face, ``sign`` (N,) +-1 outward normal along it,
        ``local`` (N, 3) the hit point in the box frame.
    """
    c, s = np.cos(yaw), np.sin(yaw)
    o = origin - center
    o_l = np.array([c * o[0] + s * o[1], -s * o[0] + c * o[1], o[2]])
    d_l = np.stack([c * dirs[:, 0] + s * dirs[:, 1], -s * dirs[:, 0] + c * dirs[:, 1],
                    dirs[:, 2]], axis=1)
    d_l = np.where(np.abs(d_l) < 1e-12, 1e-12, d_l)
    inv = 1.0 / d_l
    t1 = (-half - o_l) * inv
    t2 = (half - o_l) * inv
    t_in = np.minimum(t1, t2)
    t_near = t_in.max(1)
    t_far = np.maximum(t1, t2).min(1)
    hit = (t_far >= t_near) & (t_near > 1e-6)
    axis = t_in.argmax(1)
    sign = -np.sign(d_l[np.arange(len(d_l)), axis])
    t = np.where(hit, t_near, np.inf)
    local = o_l + d_l * np.where(hit, t_near, 0.0)[:, None]
    return t, axis, sign, local


def _albedo(name: str, local: np.ndarray, axis: np.ndarray, sign: np.ndarray,
            half: np.ndarray, colour: np.ndarray, moving: bool) -> np.ndarray:
    """Per-class surface appearance: (K, 3) albedo at hit points in the box frame."""
    k = len(local)
    out = np.broadcast_to(colour, (k, 3)).astype(np.float32).copy()
    hz = (local[:, 2] + half[2]) / (2 * half[2])  # 0 at the bottom, 1 at the top
    u, v = local[:, 0], local[:, 1]
    side = axis == 1
    front = (axis == 0) & (sign > 0)
    rear = (axis == 0) & (sign < 0)
    vertical = axis != 2
    dark = np.array([0.08, 0.09, 0.12], np.float32)
    if name == 'car':
        out[vertical & (hz > 0.6) & (hz < 0.92)] = dark  # windows
        out[(hz < 0.18) & vertical] *= 0.35  # wheels / sills
    elif name == 'truck':
        cab = u > half[0] - 0.45 * half[0]
        out[cab] = [0.86, 0.86, 0.82]
        out[cab & vertical & (hz > 0.6) & (hz < 0.85)] = dark
        out[(hz < 0.15) & vertical] *= 0.3
    elif name == 'construction_vehicle':
        out[side & (((u + local[:, 2]) % 1.2) < 0.4)] = [0.1, 0.1, 0.1]  # hazard stripes
        out[vertical & (hz > 0.7) & (u > 0)] = dark
    elif name == 'bus':
        out[vertical & (hz > 0.5) & (hz < 0.85)] = dark
        out[(hz < 0.12) & vertical] *= 0.3
    elif name == 'trailer':
        out[side & ((u % 0.8) < 0.12)] *= 0.6  # ribs
        out[(hz < 0.12) & vertical] *= 0.3
    elif name == 'barrier':
        out[(np.floor((v + half[1]) / 0.42) % 2) == 1] = [0.95, 0.95, 0.95]
    elif name == 'traffic_cone':
        out[(hz > 0.45) & (hz < 0.68)] = [0.96, 0.96, 0.96]
        out[hz < 0.08] = [0.1, 0.1, 0.1]
    elif name == 'pedestrian':
        out[hz < 0.5] = [0.12, 0.14, 0.3]  # trousers
        out[hz > 0.86] = [0.85, 0.64, 0.5]  # head
    elif name in CYCLES:
        out[hz < 0.35] = [0.1, 0.1, 0.1]  # wheels
        if moving:  # the rider
            out[hz > 0.6] = [0.9, 0.55, 0.2]
    if name in VEHICLES or name in CYCLES:
        lamp_h = (hz > 0.3) & (hz < 0.45)
        lamp_v = (np.abs(v) > 0.55 * half[1]) & (np.abs(v) < 0.9 * half[1])
        if name in CYCLES:
            lamp_v = np.abs(v) < 0.4 * half[1]
        out[front & lamp_h & lamp_v] = [1.0, 1.0, 0.85]
        out[rear & lamp_h & lamp_v] = [0.9, 0.05, 0.05]
    return out


# ------------------------------------------------------------------------------- objects
@dataclass
class _Object:
    name: str  # detection class or 'other' key
    spec: ClassSpec
    size: np.ndarray  # (l, w, h)
    colour: np.ndarray
    moving: bool
    static_pose: Optional[Tuple[float, float, float]] = None  # x, y, yaw
    s0: float = 0.0
    d: float = 0.0
    direction: int = 1
    speed: float = 0.0
    t_anchor: float = 0.0
    frames: List[int] = field(default_factory=list)
    token: str = ''

    @property
    def radius(self) -> float:
        return 0.5 * float(np.hypot(self.size[0], self.size[1]))

    def pose_at(self, road: Road, t: np.ndarray) -> np.ndarray:
        """(T, 3) global (x, y, yaw) at times ``t`` (s)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if not self.moving:
            return np.tile(np.asarray(self.static_pose, dtype=np.float64), (len(t), 1))
        s = self.s0 + self.direction * self.speed * (t - self.t_anchor)
        x, y, h = road.point(s, self.d)
        return np.stack([x, y, h + (0.0 if self.direction > 0 else np.pi)], -1)

    def attribute(self) -> str:
        # Follows the speed rule a detector's exporter uses, so perfect boxes score AAE 0.
        if self.name in VEHICLES:
            return 'vehicle.moving' if self.moving else (
                'vehicle.stopped' if self.name == 'bus' else 'vehicle.parked')
        if self.name in CYCLES:
            return 'cycle.with_rider' if self.moving else 'cycle.without_rider'
        if self.name == 'pedestrian':
            return 'pedestrian.moving' if self.moving else 'pedestrian.standing'
        return ''


def _propose_object(name: str, spec: ClassSpec, road: Road, ego_s: float, t_anchor: float,
                    rng: np.random.Generator) -> _Object:
    size = np.asarray(spec.size_lwh) * rng.uniform(0.88, 1.12, 3)
    colour = np.clip(np.asarray(spec.colour) * rng.uniform(0.8, 1.15), 0, 1)
    if name == 'pedestrian':  # shirts vary
        colour = np.clip(np.asarray(spec.colour) + rng.uniform(-0.25, 0.05, 3), 0, 1)
    moving = rng.random() < spec.moving_prob
    side = rng.choice([-1.0, 1.0])
    s = ego_s + rng.uniform(-45.0, 45.0)
    lane_d = side * rng.choice([LANE_WIDTH / 2, 1.5 * LANE_WIDTH])
    if moving:
        if name == 'pedestrian':
            d = side * rng.uniform(ROAD_HALF_WIDTH + 0.6, ROAD_HALF_WIDTH + WALKWAY_WIDTH - 0.6)
            direction = int(rng.choice([-1, 1]))
        elif name == 'bicycle':
            d, direction = side * (ROAD_HALF_WIDTH - 0.8), int(-side)
        else:
            d, direction = lane_d, int(-np.sign(lane_d))  # right-hand traffic
        return _Object(name, spec, size, colour, True, s0=s, d=d, direction=direction,
                       speed=rng.uniform(*spec.speed), t_anchor=t_anchor)
    # static objects: where they would stand, and their heading relative to the road
    flip = 0.0 if rng.random() < 0.5 else np.pi
    if name in ('car', 'truck', 'bus', 'motorcycle'):
        d, rel = side * (ROAD_HALF_WIDTH - 0.6 * size[1] - 0.2), (
            0.0 if side < 0 else np.pi) + rng.normal(0, 0.03)
        if name == 'motorcycle':
            d = side * rng.uniform(ROAD_HALF_WIDTH + 0.5, ROAD_HALF_WIDTH + 2.0)
            rel = rng.uniform(-np.pi, np.pi)
    elif name in ('trailer', 'construction_vehicle'):
        d = side * rng.uniform(ROAD_HALF_WIDTH + WALKWAY_WIDTH + 2.5, 20.0)
        rel = rng.uniform(-np.pi, np.pi) if name == 'construction_vehicle' else flip
    elif name in ('pedestrian', 'bicycle', 'pushable_pullable'):
        d = side * rng.uniform(ROAD_HALF_WIDTH + 0.5, ROAD_HALF_WIDTH + WALKWAY_WIDTH - 0.5)
        rel = rng.uniform(-np.pi, np.pi)
    elif name == 'barrier':  # long side along the road, at the kerb or on a closed lane
        d = side * rng.choice([ROAD_HALF_WIDTH + 0.4, LANE_WIDTH + 0.3])
        rel = np.pi / 2 + flip + rng.normal(0, 0.05)
    else:  # traffic cones on lane lines and kerbs
        d = side * rng.choice([LANE_WIDTH, ROAD_HALF_WIDTH - 0.3, ROAD_HALF_WIDTH + 0.5])
        rel = rng.uniform(-np.pi, np.pi)
    x, y, h = road.point(s, d)
    return _Object(name, spec, size, colour, False,
                   static_pose=(float(x), float(y), float(h + rel)), t_anchor=t_anchor)


# ------------------------------------------------------------------------------- scenes
def scene_names(version: str, num_scenes: int,
                num_val: Optional[int] = None) -> List[Tuple[str, str]]:
    """``(scene name, split)`` for each synthetic scene so the devkit's splits select them.

    v1.0-mini: the 8 ``mini_train`` and 2 ``mini_val`` names (at most 10 scenes).
    v1.0-trainval: names from ``nuscenes.utils.splits`` train / val (without scenes on the
    CAN-bus blacklist). v1.0-test: names from the test split.
    """
    if num_scenes < 1:
        raise ValueError(f'num_scenes must be >= 1, got {num_scenes}')
    if version == 'v1.0-test':
        from nuscenes.utils.splits import test
        return [(n, 'test') for n in test[:num_scenes]]
    if num_val is None:
        num_val = 0 if num_scenes == 1 else max(1, min(len(MINI_VAL), num_scenes // 5)) \
            if version == 'v1.0-mini' else max(1, round(num_scenes * 0.2))
    num_train = num_scenes - num_val
    if version == 'v1.0-mini':
        if num_val > len(MINI_VAL) or num_train > len(MINI_TRAIN):
            raise ValueError(f'v1.0-mini has 8 train + 2 val scene names; asked for '
                             f'{num_train} train + {num_val} val (use v1.0-trainval)')
        train, val = MINI_TRAIN, MINI_VAL
    elif version == 'v1.0-trainval':
        import tempfile

        from nuscenes.can_bus.can_bus_api import NuScenesCanBus
        from nuscenes.utils.splits import train as train_all
        from nuscenes.utils.splits import val as val_all
        with tempfile.TemporaryDirectory() as tmp:  # the blacklist is set up in __init__
            os.makedirs(osp.join(tmp, 'can_bus'))
            black = {f'scene-{i:04d}' for i in NuScenesCanBus(dataroot=tmp).can_blacklist}
        train = [n for n in train_all if n not in black]
        val = [n for n in val_all if n not in black]
    else:
        raise ValueError(f'version must be v1.0-mini, v1.0-trainval or v1.0-test, got {version}')
    return [(n, 'train') for n in train[:num_train]] + [(n, 'val') for n in val[:num_val]]


def _ego_track(duration: float, rng: np.random.Generator, dt: float = 0.01):
    """Ego arc length on a fine time grid starting 1 s before the first key frame."""
    t = np.arange(-1.0, duration + 1.0 + dt, dt)
    speed = np.empty_like(t)
    v = 0.0 if rng.random() < 0.1 else rng.uniform(3.0, 12.0)
    accel, next_change = 0.0, t[0]
    for i, ti in enumerate(t):
        if ti >= next_change:
            accel = rng.uniform(-1.2, 1.2) if v > 0 else (rng.uniform(0, 1.0)
                                                           if rng.random() < 0.5 else 0.0)
            next_change = ti + rng.uniform(1.5, 3.5)
        v = float(np.clip(v + accel * dt, 0.0, 15.0))
        speed[i] = v
    s = np.concatenate([[0.0], np.cumsum(speed[:-1] * dt)])
    return t, s


class _Scene:
    """One scene's world: road, ego track and objects, with pose queries."""

    def __init__(self, idx: int, name: str, split: str, num_frames: int,
                 objects_per_frame: int, rng: np.random.Generator, other_prob: float,
                 seed: int) -> None:
        self.idx, self.name, self.split = idx, name, split
        self.duration = (num_frames - 1) * SAMPLE_PERIOD_US * 1e-6
        self.start_us = FIRST_TIMESTAMP_US + idx * 3_600_000_000
        # key-frame (LiDAR) times with a little jitter, like the real 2 Hz sampling
        jitter = rng.integers(-2000, 2000, num_frames)
        jitter[0] = 0
        self.frame_us = self.start_us + np.arange(num_frames) * SAMPLE_PERIOD_US + jitter
        margin = 80.0 + 15.0 * self.duration
        start = rng.uniform(300.0, 1800.0, 2)
        self.road = Road(start, rng.uniform(-np.pi, np.pi), -margin, 15.0 * self.duration + margin,
                         rng)
        self.track_t, self.track_s = _ego_track(self.duration, rng)
        ego_s_end = self.track_s[-1]
        self.cross_s = float(rng.uniform(0.3, 0.9) * ego_s_end + 25.0) \
            if rng.random() < 0.6 else None
        self.layout = _build_layout(self.road, self.cross_s)
        self.sun = self._sun(rng)
        self.objects = self._spawn(num_frames, objects_per_frame, rng, other_prob)
        for j, obj in enumerate(self.objects):
            obj.token = _token(seed, 'instance', name, j)

    @staticmethod
    def _sun(rng) -> np.ndarray:
        elev, az = rng.uniform(0.5, 1.1), rng.uniform(-np.pi, np.pi)
        return np.array([np.cos(elev) * np.cos(az), np.cos(elev) * np.sin(az), np.sin(elev)])

    def time_s(self, us) -> np.ndarray:
        return (np.asarray(us, dtype=np.float64) - self.start_us) * 1e-6

    def ego_pose(self, us) -> np.ndarray:
        """(T, 3) ego (x, y, yaw) at µs timestamps."""
        s = np.interp(self.time_s(us), self.track_t, self.track_s)
        x, y, h = self.road.point(s, EGO_LATERAL)
        return np.stack([np.atleast_1d(x), np.atleast_1d(y), np.atleast_1d(h)], -1)

    def _spawn(self, num_frames: int, per_frame: int, rng, other_prob: float) -> List[_Object]:
        frame_t = self.time_s(self.frame_us)
        ego = self.ego_pose(self.frame_us)  # (F, 3)
        ego_centre = ego[:, :2] + 1.4 * np.stack([np.cos(ego[:, 2]), np.sin(ego[:, 2])], -1)
        ego_s = np.interp(frame_t, self.track_t, self.track_s)
        counts = np.zeros(num_frames, int)
        objects: List[_Object] = []
        tracks: List[np.ndarray] = []  # (F, 3) pose per object, NaN where not annotated
        must = list(rng.permutation(CLASSES))  # every class in every scene
        names = list(CLASS_SPECS)
        weights = np.array([CLASS_SPECS[n].weight for n in names])
        attempts = 0
        while counts.min() < per_frame and attempts < 60 * per_frame * num_frames:
            attempts += 1
            k = int(rng.choice(np.flatnonzero(counts == counts.min())))
            if must:
                name = str(must[-1])
            elif rng.random() < other_prob:
                name = 'pushable_pullable'
            else:
                name = str(rng.choice(names, p=weights / weights.sum()))
            spec = CLASS_SPECS.get(name) or OTHER_SPECS[name]
            obj = _propose_object(name, spec, self.road, float(ego_s[k]), float(frame_t[k]), rng)
            pose = obj.pose_at(self.road, frame_t)
            dist_ego = np.linalg.norm(pose[:, :2] - ego_centre, axis=1)
            dist_lidar = np.linalg.norm(pose[:, :2] - ego[:, :2], axis=1)
            if dist_ego[k] > 48.0 or dist_ego[k] < 4.0 + obj.radius:
                continue
            # annotated on the contiguous run of frames around k within range
            inside = dist_lidar < ANNOTATION_RANGE
            lo = k
            while lo > 0 and inside[lo - 1]:
                lo -= 1
            hi = k
            while hi < num_frames - 1 and inside[hi + 1]:
                hi += 1
            frames = np.arange(lo, hi + 1)
            if np.any(dist_ego[frames] < 2.8 + obj.radius + 0.5):
                continue  # would hit the ego car
            clash = False
            for other, track in zip(objects, tracks):
                common = frames[~np.isnan(track[frames, 0])]
                if len(common) and np.any(np.linalg.norm(
                        track[common, :2] - pose[common, :2], axis=1)
                        < other.radius + obj.radius + 0.3):
                    clash = True
                    break
            if clash:
                continue
            track = np.full_like(pose, np.nan)
            track[frames] = pose[frames]
            obj.frames = frames.tolist()
            objects.append(obj)
            tracks.append(track)
            counts[frames] += 1
            if must:
                must.pop()
        return objects

    def boxes_at(self, us: int, frame: Optional[int] = None) -> List[Tuple[int, np.ndarray]]:
        """``(object index, (cx, cy, cz, l, w, h, yaw))`` of the objects present at a frame."""
        t = self.time_s(us)
        out = []
        for j, obj in enumerate(self.objects):
            if frame is not None and frame not in obj.frames:
                continue
            x, y, yaw = obj.pose_at(self.road, t)[0]
            out.append((j, np.array([x, y, obj.size[2] / 2, *obj.size, yaw])))
        return out


# --------------------------------------------------------------------------- rendering
def _corners(box: np.ndarray) -> np.ndarray:
    """(8, 3) corners of a ``(cx, cy, cz, l, w, h, yaw)`` box (geometric centre)."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    local = signs * box[3:6] / 2
    c, s = np.cos(box[6]), np.sin(box[6])
    return np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1],
                     local[:, 2]], -1) + box[:3]


# the 12 edges of a box with the corner order of ``_corners``
_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count('1') == 1]


def _clip_to_front(pts: np.ndarray, near: float) -> Optional[np.ndarray]:
    """Corners (8, 3) in a camera frame -> the points of the box's part with z >= near
    (kept corners plus edge / plane intersections), or None when all are behind."""
    z = pts[:, 2]
    if np.all(z < near):
        return None
    if np.all(z >= near):
        return pts
    out = [pts[z >= near]]
    for a, b in _EDGES:
        if (z[a] >= near) != (z[b] >= near):
            t = (near - z[a]) / (z[b] - z[a])
            out.append((pts[a] + t * (pts[b] - pts[a]))[None])
    return np.concatenate(out)


def _rotate(vectors: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """``vectors @ mat.T`` for (N, k) x (m, k), column by column: BLAS threads only add
    overhead at these sizes on a busy machine."""
    out = np.empty((len(vectors), mat.shape[0]), dtype=np.result_type(vectors, mat))
    for i in range(mat.shape[0]):
        out[:, i] = vectors[:, 0] * mat[i, 0]
        for k in range(1, mat.shape[1]):
            out[:, i] += vectors[:, k] * mat[i, k]
    return out


HORIZON = np.array([0.78, 0.83, 0.88], np.float32)
ZENITH = np.array([0.35, 0.52, 0.82], np.float32)


class _CameraModel:
    """Per-camera quantities that do not change between frames.

    The ego pose is flat (z = 0, yaw only) and the ground is the plane z = 0, so the sky
    colour, the ground hit points (in the ego frame) and the haze of every pixel are fixed.
    """

    def __init__(self, width: int, height: int, intrinsic: np.ndarray,
                 cam2ego: np.ndarray) -> None:
        self.width, self.height, self.intrinsic = width, height, intrinsic
        u, v = np.meshgrid(np.arange(width, dtype=np.float64),
                           np.arange(height, dtype=np.float64))
        pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], -1)
        self.dirs_ego = pix @ np.linalg.inv(intrinsic).T @ cam2ego[:3, :3].T  # (N, 3)
        self.origin_ego = cam2ego[:3, 3]
        elev = self.dirs_ego[:, 2] / np.linalg.norm(self.dirs_ego, axis=1)
        self.sky = HORIZON + (ZENITH - HORIZON) * np.clip(elev, 0, 1)[:, None] ** 0.6
        down = self.dirs_ego[:, 2] < -1e-9
        t = -self.origin_ego[2] / np.where(down, self.dirs_ego[:, 2], -1.0)
        pts = self.origin_ego[:2] + self.dirs_ego[:, :2] * t[:, None]
        dist = np.linalg.norm(pts - self.origin_ego[:2], axis=1)
        self.ground = np.flatnonzero(down & (dist < 400.0))
        self.ground_t = t[self.ground]
        self.ground_xy = pts[self.ground]  # ego frame
        self.ground_haze = (1.0 - np.exp(-dist[self.ground] / 160.0))[:, None].astype(
            np.float32)


def _render_camera(scene: _Scene, ground: GroundTexture, cam: _CameraModel,
                   ego2global: np.ndarray, cam2global: np.ndarray,
                   boxes: List[Tuple[int, np.ndarray]], noise: np.ndarray,
                   rng: np.random.Generator, visible: np.ndarray,
                   silhouette: np.ndarray) -> np.ndarray:
    """Render one camera image (H, W, 3) uint8 RGB; accumulates per-object pixel counts."""
    width, height, intrinsic = cam.width, cam.height, cam.intrinsic
    origin = cam2global[:3, 3]
    dirs = _rotate(cam.dirs_ego, ego2global[:3, :3])
    n = len(dirs)
    depth = np.full(n, np.inf)
    colour = cam.sky.astype(np.float32)
    owner = np.full(n, -1)
    horizon = HORIZON
    # ground plane z = 0 with distance haze
    g = cam.ground
    depth[g] = cam.ground_t
    gxy = _rotate(cam.ground_xy, ego2global[:2, :2]) + ego2global[:2, 3]
    colour[g] = ground.sample(gxy[:, 0], gxy[:, 1]) * (1 - cam.ground_haze) + \
        horizon * cam.ground_haze
    # boxes, each on the pixel rectangle its projection covers
    global2cam = np.linalg.inv(cam2global)
    for j, box in boxes:
        obj = scene.objects[j]
        corners = _corners(box)
        cam_pts = corners @ global2cam[:3, :3].T + global2cam[:3, 3]
        front = _clip_to_front(cam_pts, near=0.1)
        if front is None:
            continue
        uv = front @ intrinsic.T
        uv = uv[:, :2] / uv[:, 2:3]
        u0, v0 = np.floor(uv.min(0)).astype(int) - 1
        u1, v1 = np.ceil(uv.max(0)).astype(int) + 1
        u0, v0, u1, v1 = max(u0, 0), max(v0, 0), min(u1, width - 1), min(v1, height - 1)
        if u0 > u1 or v0 > v1:
            continue
        rows = np.arange(v0, v1 + 1)
        idx = (rows[:, None] * width + np.arange(u0, u1 + 1)[None]).ravel()
        half = box[3:6] / 2
        t, axis, sign, local = ray_box_intersect(origin, dirs[idx], box[:3], box[6], half)
        hit = np.isfinite(t)
        silhouette[j] += int(hit.sum())
        closer = hit & (t < depth[idx])
        if not closer.any():
            continue
        sel = idx[closer]
        depth[sel] = t[closer]
        owner[sel] = j
        albedo = _albedo(obj.name, local[closer], axis[closer], sign[closer], half,
                         obj.colour, obj.moving)
        normal_l = np.zeros((int(closer.sum()), 3))
        normal_l[np.arange(len(sel)), axis[closer]] = sign[closer]
        c, s = np.cos(box[6]), np.sin(box[6])
        normal = np.stack([c * normal_l[:, 0] - s * normal_l[:, 1],
                           s * normal_l[:, 0] + c * normal_l[:, 1], normal_l[:, 2]], -1)
        shade = 0.45 + 0.55 * np.clip(_rotate(normal, scene.sun[None])[:, 0], 0, 1)
        d = np.linalg.norm((dirs[sel] * depth[sel, None])[:, :2], axis=1)
        haze = (1.0 - np.exp(-d / 160.0))[:, None]
        colour[sel] = (albedo * shade[:, None]) * (1 - haze) + horizon * haze
    ids, cnt = np.unique(owner[owner >= 0], return_counts=True)
    visible[ids] += cnt
    dy = rng.integers(0, noise.shape[0] - height + 1)
    dx = rng.integers(0, noise.shape[1] - width + 1)
    img = colour.reshape(height, width, 3) + noise[dy:dy + height, dx:dx + width]
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _lidar_scan(scene: _Scene, lidar2global: np.ndarray, boxes: List[Tuple[int, np.ndarray]],
                num_beams: int, num_azimuth: int, max_range: float, ground_keep: int):
    """Simulated spinning LiDAR: returns points (P, 5) in the LiDAR frame and hit counts."""
    elev = np.deg2rad(np.linspace(-30.67, 10.67, num_beams))
    az = np.linspace(-np.pi, np.pi, num_azimuth, endpoint=False)
    ee, aa = np.meshgrid(elev, az, indexing='ij')
    dirs_l = np.stack([np.cos(ee) * np.cos(aa), np.cos(ee) * np.sin(aa), np.sin(ee)],
                      -1).reshape(-1, 3)
    ring = np.repeat(np.arange(num_beams), num_azimuth).astype(np.float64)
    az_idx = np.tile(np.arange(num_azimuth), num_beams)
    origin = lidar2global[:3, 3]
    dirs = _rotate(dirs_l, lidar2global[:3, :3])
    down = dirs[:, 2] < -1e-9
    depth = np.where(down, -origin[2] / np.where(down, dirs[:, 2], -1.0), np.inf)
    depth[depth > max_range] = np.inf
    owner = np.full(len(dirs), -1)
    intensity = np.full(len(dirs), GROUND_INTENSITY)
    global2lidar = np.linalg.inv(lidar2global)
    step = 2 * np.pi / num_azimuth
    for j, box in boxes:
        if np.linalg.norm(box[:2] - origin[:2]) > max_range + 10:
            continue
        # only the rays within the box's azimuth interval (seen from the sensor)
        corners = _corners(box) @ global2lidar[:3, :3].T + global2lidar[:3, 3]
        centre_az = np.arctan2(*(corners.mean(0)[[1, 0]]))
        rel = (np.arctan2(corners[:, 1], corners[:, 0]) - centre_az + np.pi) % (2 * np.pi) - np.pi
        first = int(np.floor((centre_az + rel.min() + np.pi) / step)) - 1
        last = int(np.ceil((centre_az + rel.max() + np.pi) / step)) + 1
        cols = np.arange(first, last + 1) % num_azimuth
        idx = (np.arange(num_beams)[:, None] * num_azimuth + cols[None]).ravel()
        t, *_ = ray_box_intersect(origin, dirs[idx], box[:3], box[6], box[3:6] / 2)
        closer = (t < depth[idx]) & (t <= max_range)
        sel = idx[closer]
        depth[sel] = t[closer]
        owner[sel] = j
        intensity[sel] = 255.0 * scene.objects[j].spec.reflectivity
    keep = np.isfinite(depth) & ((owner >= 0) | (az_idx % ground_keep == 0))
    pts_l = dirs_l[keep] * depth[keep, None]
    points = np.concatenate([pts_l, intensity[keep, None], ring[keep, None]], 1)
    counts = np.bincount(owner[owner >= 0], minlength=len(scene.objects))
    return points.astype(np.float32), counts


# ------------------------------------------------------------------------------ writing
def generate_synthetic_nuscenes(root: str, num_scenes: int = 10, frames_per_scene: int = 12,
                                objects_per_frame: int = 14, image_scale: float = 0.2,
                                seed: int = 0, version: str = 'v1.0-mini',
                                num_val_scenes: Optional[int] = None,
                                other_prob: float = 0.04, lidar_beams: int = 32,
                                lidar_azimuth_steps: int = 1080, lidar_ground_keep: int = 4,
                                jpeg_quality: int = 92, verbose: bool = True) -> dict:
    """Write a synthetic nuScenes dataroot (see the module docstring).

    Args:
        root (str): output directory (created; existing files of the same names are
            overwritten).
        num_scenes (int): scenes; v1.0-mini allows at most 10 (8 train + 2 val names).
        frames_per_scene (int): key frames per scene (2 Hz).
        objects_per_frame (int): minimum number of annotated objects per key frame.
        image_scale (float): image size relative to 1600x900; intrinsics are scaled.
        seed (int): everything is deterministic given the seed.
        version (str): 'v1.0-mini', 'v1.0-trainval' or 'v1.0-test' (no annotations).
        num_val_scenes (int, optional): default: 2 of 10 mini scenes, 20 % for trainval.
        other_prob (float): probability that a spawned object is of a non-detection
            category (label -1 in the infos).
        lidar_beams, lidar_azimuth_steps (int): the simulated LiDAR's resolution.
        lidar_ground_keep (int): keep every n-th ground return (objects keep all).

    Returns:
        dict: ``root``, ``version``, ``scenes`` (list of dicts with ``name``, ``split``,
        ``token``, ``sample_tokens``), ``num_samples``, ``num_annotations``,
        ``num_zero_point_annotations``, ``seconds``.
    """
    import cv2
    if frames_per_scene < 2:
        raise ValueError(f'frames_per_scene must be >= 2, got {frames_per_scene}')
    if not 0.02 <= image_scale <= 1.0:
        raise ValueError(f'image_scale must be in [0.02, 1], got {image_scale}')
    start_time = time.time()
    rng_master = np.random.default_rng(seed)
    names = scene_names(version, num_scenes, num_val_scenes)
    with_annotations = version != 'v1.0-test'
    width, height = int(round(FULL_WIDTH * image_scale)), int(round(FULL_HEIGHT * image_scale))
    sx, sy = width / FULL_WIDTH, height / FULL_HEIGHT
    table_dir = osp.join(root, version)
    for sub in [table_dir, osp.join(root, 'maps'), osp.join(root, 'can_bus'),
                osp.join(root, 'samples', 'LIDAR_TOP')] + [
                    osp.join(root, 'samples', c) for c in CAMERAS]:
        os.makedirs(sub, exist_ok=True)

    tables: Dict[str, list] = {k: [] for k in (
        'category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor',
        'ego_pose', 'log', 'scene', 'sample', 'sample_data', 'sample_annotation', 'map')}
    cat_token = {n: _token(seed, 'category', n) for n in CATEGORIES}
    tables['category'] = [dict(token=cat_token[n], name=n, description=f'{n} (synthetic)')
                          for n in CATEGORIES]
    attr_token = {n: _token(seed, 'attribute', n) for n in ATTRIBUTES}
    tables['attribute'] = [dict(token=attr_token[n], name=n, description=f'{n} (synthetic)')
                           for n in ATTRIBUTES]
    tables['visibility'] = [dict(token=t, level=lvl, description=f'visibility of {lvl} %')
                            for t, lvl in VISIBILITY_LEVELS]
    channels = list(CAMERAS) + ['LIDAR_TOP']
    sensor_token = {c: _token(seed, 'sensor', c) for c in channels}
    tables['sensor'] = [dict(token=sensor_token[c], channel=c,
                             modality='lidar' if c == 'LIDAR_TOP' else 'camera')
                        for c in channels]
    intrinsics = {}
    for cam in CAMERAS:
        _, _, f, cx, cy = RIG[cam]
        intrinsics[cam] = np.array([[f * sx, 0, cx * sx], [0, f * sy, cy * sy], [0, 0, 1]])
    sensor2ego = {cam: _pose(RIG[cam][0], RIG[cam][1]) for cam in CAMERAS}
    sensor2ego['LIDAR_TOP'] = _pose(*LIDAR_TOP)
    cam_models = {cam: _CameraModel(width, height, intrinsics[cam], sensor2ego[cam])
                  for cam in CAMERAS}
    # sensor noise: random crops of one fixed noise image
    noise = 0.012 * rng_master.standard_normal((height + 64, width + 64, 3), dtype=np.float32)

    layouts = {}
    summary_scenes = []
    num_ann = num_zero = 0
    for idx, (scene_name, split) in enumerate(names):
        rng = np.random.default_rng([seed, idx])
        scene = _Scene(idx, scene_name, split, frames_per_scene, objects_per_frame, rng,
                       other_prob, seed)
        ground = GroundTexture(scene.layout, rng)
        log_token = _token(seed, 'log', scene_name)
        scene_token = _token(seed, 'scene', scene_name)
        logfile = f'n000-synthetic-{idx:04d}'
        tables['log'].append(dict(token=log_token, logfile=logfile, vehicle='n000',
                                  date_captured='2018-07-24', location='synthetic'))
        layouts[scene_name] = dict(scene_token=scene_token, log_token=log_token,
                                   **_layout_to_json(scene.layout))
        calib = {}
        for c in channels:
            calib[c] = _token(seed, 'calibrated_sensor', scene_name, c)
            tables['calibrated_sensor'].append(dict(
                token=calib[c], sensor_token=sensor_token[c],
                translation=list(RIG[c][0] if c != 'LIDAR_TOP' else LIDAR_TOP[0]),
                rotation=list(RIG[c][1] if c != 'LIDAR_TOP' else LIDAR_TOP[1]),
                camera_intrinsic=intrinsics[c].tolist() if c != 'LIDAR_TOP' else []))
        sample_tokens = [_token(seed, 'sample', scene_name, k) for k in range(frames_per_scene)]
        ann_tokens: Dict[Tuple[int, int], str] = {}
        for j, obj in enumerate(scene.objects):
            for k in obj.frames:
                ann_tokens[(j, k)] = _token(seed, 'sample_annotation', scene_name, j, k)
        prev_sd = {c: '' for c in channels}
        sd_records = {c: [] for c in channels}
        if verbose:
            print(f'[synthetic nuScenes] {scene_name} ({split}): {len(scene.objects)} objects, '
                  f'{frames_per_scene} frames', flush=True)
        for k in range(frames_per_scene):
            lidar_us = int(scene.frame_us[k])
            tables['sample'].append(dict(
                token=sample_tokens[k], timestamp=lidar_us, scene_token=scene_token,
                prev=sample_tokens[k - 1] if k > 0 else '',
                next=sample_tokens[k + 1] if k < frames_per_scene - 1 else ''))
            visible = np.zeros(len(scene.objects), np.int64)
            silhouette = np.zeros(len(scene.objects), np.int64)
            for c in channels:
                us = lidar_us + (CAMERA_TIME_OFFSETS_US[c] if c != 'LIDAR_TOP' else 0)
                ex, ey, eyaw = scene.ego_pose(us)[0]
                ego2global = _pose((ex, ey, 0.0), _yaw_quat(eyaw))
                sd_token = _token(seed, 'sample_data', scene_name, k, c)
                sensor2global = ego2global @ sensor2ego[c]
                boxes = scene.boxes_at(us, frame=k)
                if c == 'LIDAR_TOP':
                    fname = f'samples/LIDAR_TOP/{logfile}__LIDAR_TOP__{us}.pcd.bin'
                    points, counts = _lidar_scan(scene, sensor2global, boxes, lidar_beams,
                                                 lidar_azimuth_steps, 70.0, lidar_ground_keep)
                    points.tofile(osp.join(root, fname))
                    w_h = (0, 0)
                    lidar_counts = counts
                else:
                    fname = f'samples/{c}/{logfile}__{c}__{us}.jpg'
                    img = _render_camera(scene, ground, cam_models[c], ego2global,
                                         sensor2global, boxes, noise, rng, visible, silhouette)
                    cv2.imwrite(osp.join(root, fname), img[..., ::-1],
                                [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                    w_h = (width, height)
                tables['ego_pose'].append(dict(token=sd_token, timestamp=us,
                                               rotation=_yaw_quat(eyaw),
                                               translation=[float(ex), float(ey), 0.0]))
                rec = dict(token=sd_token, sample_token=sample_tokens[k], ego_pose_token=sd_token,
                           calibrated_sensor_token=calib[c], timestamp=us,
                           fileformat='pcd' if c == 'LIDAR_TOP' else 'jpg', is_key_frame=True,
                           height=w_h[1], width=w_h[0], filename=fname, prev=prev_sd[c], next='')
                if sd_records[c]:
                    sd_records[c][-1]['next'] = sd_token
                sd_records[c].append(rec)
                prev_sd[c] = sd_token
            if not with_annotations:
                continue
            lidar_us = int(scene.frame_us[k])
            for j, box in scene.boxes_at(lidar_us, frame=k):
                obj = scene.objects[j]
                frames = obj.frames
                pos = frames.index(k)
                ratio = visible[j] / silhouette[j] if silhouette[j] else 0.0
                vis = '1' if ratio < 0.4 else '2' if ratio < 0.6 else '3' if ratio < 0.8 else '4'
                attr = obj.attribute()
                tables['sample_annotation'].append(dict(
                    token=ann_tokens[(j, k)], sample_token=sample_tokens[k],
                    instance_token=obj.token, visibility_token=vis,
                    attribute_tokens=[attr_token[attr]] if attr else [],
                    translation=[float(box[0]), float(box[1]), float(box[2])],
                    size=[float(box[4]), float(box[3]), float(box[5])],  # w, l, h
                    rotation=_yaw_quat(float(box[6])),
                    prev=ann_tokens[(j, frames[pos - 1])] if pos > 0 else '',
                    next=ann_tokens[(j, frames[pos + 1])] if pos < len(frames) - 1 else '',
                    num_lidar_pts=int(lidar_counts[j]), num_radar_pts=0))
                num_ann += 1
                num_zero += int(lidar_counts[j] == 0)
        for c in channels:
            tables['sample_data'].extend(sd_records[c])
        if with_annotations:
            for j, obj in enumerate(scene.objects):
                tables['instance'].append(dict(
                    token=obj.token, category_token=cat_token[obj.spec.category],
                    nbr_annotations=len(obj.frames),
                    first_annotation_token=ann_tokens[(j, obj.frames[0])],
                    last_annotation_token=ann_tokens[(j, obj.frames[-1])]))
        tables['scene'].append(dict(
            token=scene_token, log_token=log_token, nbr_samples=frames_per_scene,
            first_sample_token=sample_tokens[0], last_sample_token=sample_tokens[-1],
            name=scene_name, description=f'synthetic scene {idx} ({split})'))
        _write_can_bus(root, scene)
        summary_scenes.append(dict(name=scene_name, split=split, token=scene_token,
                                   sample_tokens=sample_tokens))

    map_token = _token(seed, 'map')
    map_file = f'maps/{map_token}.png'
    cv2.imwrite(osp.join(root, map_file), np.zeros((8, 8), np.uint8))
    tables['map'] = [dict(token=map_token, log_tokens=[r['token'] for r in tables['log']],
                          category='semantic_prior', filename=map_file)]
    for name, records in tables.items():
        with open(osp.join(table_dir, f'{name}.json'), 'w') as f:
            json.dump(records, f)
    with open(osp.join(root, 'maps', 'synthetic_layout.json'), 'w') as f:
        json.dump(dict(version=version, frame='global',
                       layers=['drivable_area', 'walkway', 'lane_divider', 'road_divider',
                               'ped_crossing'],
                       scenes=layouts), f)
    summary = dict(root=root, version=version, scenes=summary_scenes,
                   num_samples=len(tables['sample']), num_annotations=num_ann,
                   num_zero_point_annotations=num_zero, seconds=time.time() - start_time)
    if verbose:
        print(f'[synthetic nuScenes] wrote {summary["num_samples"]} samples, {num_ann} '
              f'annotations ({num_zero} without LiDAR points) to {root} in '
              f'{summary["seconds"]:.1f} s', flush=True)
    return summary


def _write_can_bus(root: str, scene: _Scene) -> None:
    """50 Hz CAN-bus pose messages (keys as in the real ``scene-XXXX_pose.json``)."""
    t = np.arange(-0.5, scene.duration + 0.5, 0.02)
    us = scene.start_us + np.round(t * 1e6).astype(np.int64)
    pose = scene.ego_pose(us)
    dt = 0.02
    vel_xy = np.gradient(pose[:, :2], dt, axis=0)
    yaw = np.unwrap(pose[:, 2])
    yaw_rate = np.gradient(yaw, dt)
    cos, sin = np.cos(pose[:, 2]), np.sin(pose[:, 2])
    v_fwd = vel_xy[:, 0] * cos + vel_xy[:, 1] * sin
    a_fwd = np.gradient(v_fwd, dt)
    a_lat = v_fwd * yaw_rate
    msgs = []
    for i in range(len(t)):
        msgs.append(dict(
            accel=[float(a_fwd[i]), float(a_lat[i]), 9.81],
            orientation=_yaw_quat(float(pose[i, 2])),
            pos=[float(pose[i, 0]), float(pose[i, 1]), 0.0],
            rotation_rate=[0.0, 0.0, float(yaw_rate[i])],
            utime=int(us[i]),
            vel=[float(v_fwd[i]), 0.0, 0.0]))
    with open(osp.join(root, 'can_bus', f'{scene.name}_pose.json'), 'w') as f:
        json.dump(msgs, f)
