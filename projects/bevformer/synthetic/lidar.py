"""The simulated spinning 32-beam LiDAR, ray cast against the same world as the cameras."""
from typing import List, Tuple

import numpy as np

from .raycast import centre_box_corners, ray_box_intersect, rotate_rows
from .scenes import Scene

GROUND_INTENSITY = 8.0  # LiDAR intensity of ground returns (objects: 255 * reflectivity)


def lidar_scan(scene: Scene, lidar2global: np.ndarray, boxes: List[Tuple[int, np.ndarray]],
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
    dirs = rotate_rows(dirs_l, lidar2global[:3, :3])
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
        corners = centre_box_corners(box) @ global2lidar[:3, :3].T + global2lidar[:3, 3]
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
