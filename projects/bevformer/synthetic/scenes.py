"""A scene: scene names of the devkit splits, the ego track, and the objects spawned along
the road so that every key frame has enough annotated objects."""
import os
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np

from projects.bevformer.constants import CLASSES

from .layout import EGO_LATERAL, Road, build_layout
from .objects import CLASS_SPECS, OTHER_SPECS, SceneObject, propose_object

MINI_TRAIN = ('scene-0061', 'scene-0553', 'scene-0655', 'scene-0757', 'scene-0796',
              'scene-1077', 'scene-1094', 'scene-1100')
MINI_VAL = ('scene-0103', 'scene-0916')


ANNOTATION_RANGE = 60.0  # objects are annotated while within this distance of the ego (m)
SAMPLE_PERIOD_US = 500_000  # key frames at 2 Hz


FIRST_TIMESTAMP_US = 1532402927647951  # the real first sample of scene-0061


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


def ego_track(duration: float, rng: np.random.Generator, dt: float = 0.01):
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


class Scene:
    """One scene's world: road, ego track and objects, with pose queries."""

    def __init__(self, idx: int, name: str, split: str, num_frames: int,
                 objects_per_frame: int, rng: np.random.Generator,
                 other_prob: float) -> None:
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
        self.track_t, self.track_s = ego_track(self.duration, rng)
        ego_s_end = self.track_s[-1]
        self.cross_s = float(rng.uniform(0.3, 0.9) * ego_s_end + 25.0) \
            if rng.random() < 0.6 else None
        self.layout = build_layout(self.road, self.cross_s)
        self.sun = self._sun(rng)
        self.objects = self._spawn(num_frames, objects_per_frame, rng, other_prob)

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

    def _spawn(self, num_frames: int, per_frame: int, rng, other_prob: float) -> List[SceneObject]:
        frame_t = self.time_s(self.frame_us)
        ego = self.ego_pose(self.frame_us)  # (F, 3)
        ego_centre = ego[:, :2] + 1.4 * np.stack([np.cos(ego[:, 2]), np.sin(ego[:, 2])], -1)
        ego_s = np.interp(frame_t, self.track_t, self.track_s)
        counts = np.zeros(num_frames, int)
        objects: List[SceneObject] = []
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
            obj = propose_object(name, spec, self.road, float(ego_s[k]), float(frame_t[k]), rng)
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
