"""Camera images: an exact per-pixel ray cast against the ground plane and the boxes."""
from typing import List, Optional, Tuple

import numpy as np

from .raycast import BOX_EDGES, centre_box_corners, ray_box_intersect, rotate_rows
from .scenes import Scene
from .textures import GroundTexture, surface_albedo

HORIZON = np.array([0.78, 0.83, 0.88], np.float32)
ZENITH = np.array([0.35, 0.52, 0.82], np.float32)


def clip_to_front(pts: np.ndarray, near: float) -> Optional[np.ndarray]:
    """Corners (8, 3) in a camera frame -> the points of the box's part with z >= near
    (kept corners plus edge / plane intersections), or None when all are behind."""
    z = pts[:, 2]
    if np.all(z < near):
        return None
    if np.all(z >= near):
        return pts
    out = [pts[z >= near]]
    for a, b in BOX_EDGES:
        if (z[a] >= near) != (z[b] >= near):
            t = (near - z[a]) / (z[b] - z[a])
            out.append((pts[a] + t * (pts[b] - pts[a]))[None])
    return np.concatenate(out)


class CameraModel:
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


def render_camera(scene: Scene, ground: GroundTexture, cam: CameraModel,
                   ego2global: np.ndarray, cam2global: np.ndarray,
                   boxes: List[Tuple[int, np.ndarray]], noise: np.ndarray,
                   rng: np.random.Generator, visible: np.ndarray,
                   silhouette: np.ndarray) -> np.ndarray:
    """Render one camera image (H, W, 3) uint8 RGB; accumulates per-object pixel counts."""
    width, height, intrinsic = cam.width, cam.height, cam.intrinsic
    origin = cam2global[:3, 3]
    dirs = rotate_rows(cam.dirs_ego, ego2global[:3, :3])
    n = len(dirs)
    depth = np.full(n, np.inf)
    colour = cam.sky.astype(np.float32)
    owner = np.full(n, -1)
    horizon = HORIZON
    # ground plane z = 0 with distance haze
    g = cam.ground
    depth[g] = cam.ground_t
    gxy = rotate_rows(cam.ground_xy, ego2global[:2, :2]) + ego2global[:2, 3]
    colour[g] = ground.sample(gxy[:, 0], gxy[:, 1]) * (1 - cam.ground_haze) + \
        horizon * cam.ground_haze
    # boxes, each on the pixel rectangle its projection covers
    global2cam = np.linalg.inv(cam2global)
    for j, box in boxes:
        obj = scene.objects[j]
        corners = centre_box_corners(box)
        cam_pts = corners @ global2cam[:3, :3].T + global2cam[:3, 3]
        front = clip_to_front(cam_pts, near=0.1)
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
        albedo = surface_albedo(obj.name, local[closer], axis[closer], sign[closer], half,
                         obj.colour, obj.moving)
        normal_l = np.zeros((int(closer.sum()), 3))
        normal_l[np.arange(len(sel)), axis[closer]] = sign[closer]
        c, s = np.cos(box[6]), np.sin(box[6])
        normal = np.stack([c * normal_l[:, 0] - s * normal_l[:, 1],
                           s * normal_l[:, 0] + c * normal_l[:, 1], normal_l[:, 2]], -1)
        shade = 0.45 + 0.55 * np.clip(rotate_rows(normal, scene.sun[None])[:, 0], 0, 1)
        d = np.linalg.norm((dirs[sel] * depth[sel, None])[:, :2], axis=1)
        haze = (1.0 - np.exp(-d / 160.0))[:, None]
        colour[sel] = (albedo * shade[:, None]) * (1 - haze) + horizon * haze
    ids, cnt = np.unique(owner[owner >= 0], return_counts=True)
    visible[ids] += cnt
    dy = rng.integers(0, noise.shape[0] - height + 1)
    dx = rng.integers(0, noise.shape[1] - width + 1)
    img = colour.reshape(height, width, 3) + noise[dy:dy + height, dx:dx + width]
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
