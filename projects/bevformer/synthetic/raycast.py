"""Ray casting against oriented boxes, and the box corners that bound which rays to cast."""
import numpy as np


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


def centre_box_corners(box: np.ndarray) -> np.ndarray:
    """(8, 3) corners of a ``(cx, cy, cz, l, w, h, yaw)`` box (geometric centre)."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    local = signs * box[3:6] / 2
    c, s = np.cos(box[6]), np.sin(box[6])
    return np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1],
                     local[:, 2]], -1) + box[:3]


# the 12 edges of a box with the corner order of ``centre_box_corners``
BOX_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count('1') == 1]


def rotate_rows(vectors: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """``vectors @ mat.T`` for (N, k) x (m, k), column by column: BLAS threads only add
    overhead at these sizes on a busy machine."""
    out = np.empty((len(vectors), mat.shape[0]), dtype=np.result_type(vectors, mat))
    for i in range(mat.shape[0]):
        out[:, i] = vectors[:, 0] * mat[i, 0]
        for k in range(1, mat.shape[1]):
            out[:, i] += vectors[:, k] * mat[i, k]
    return out
