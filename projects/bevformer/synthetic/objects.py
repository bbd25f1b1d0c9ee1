"""The objects of a scene: per-class size / motion / appearance specs, and where a proposed
object stands or drives."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .layout import LANE_WIDTH, ROAD_HALF_WIDTH, WALKWAY_WIDTH, Road


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


@dataclass
class SceneObject:
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
    token: str = ''  # the instance token, set by the writer

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


def propose_object(name: str, spec: ClassSpec, road: Road, ego_s: float, t_anchor: float,
                    rng: np.random.Generator) -> SceneObject:
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
        return SceneObject(name, spec, size, colour, True, s0=s, d=d, direction=direction,
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
    return SceneObject(name, spec, size, colour, False,
                   static_pose=(float(x), float(y), float(h + rel)), t_anchor=t_anchor)
