"""3D boxes in our LiDAR-frame convention and their devkit (global-frame) form.

Our convention (docs/data_format.md): a box is ``(x, y, z, l, w, h, yaw[, vx, vy])`` in the
LiDAR frame, z at the **bottom** face, ``l`` along the heading, ``yaw`` about +z from +x
(counter-clockwise), velocity in the LiDAR frame.

The nuScenes devkit form: geometric ``center`` (3,), ``size`` as ``(w, l, h)``, a rotation
quaternion ``(w, x, y, z)`` and a velocity ``(vx, vy)``, all in the global frame.

All functions here are pure numpy (float64) except :func:`box_corners`, which also accepts a
torch Tensor and returns the same type.
"""
from typing import Dict, Union

import numpy as np

try:  # torch is optional for the numpy users of this module (e.g. the data generator)
    import torch
except ImportError:  # pragma: no cover
    torch = None

ArrayLike = Union[np.ndarray, 'torch.Tensor']

# Unit-cube corners, ordered as bottom face (counter-clockwise seen from above, starting
# front-left) then top face in the same order. x is along the length (heading), y along
# the width, z up from the bottom face.
_UNIT_CORNERS = np.array(
    [[0.5, 0.5, 0.0], [-0.5, 0.5, 0.0], [-0.5, -0.5, 0.0], [0.5, -0.5, 0.0],
     [0.5, 0.5, 1.0], [-0.5, 0.5, 1.0], [-0.5, -0.5, 1.0], [0.5, -0.5, 1.0]])


def _check_boxes(boxes: ArrayLike, min_dim: int, name: str = 'boxes') -> None:
    if boxes.ndim != 2 or boxes.shape[1] < min_dim:
        raise ValueError(f'{name}: expected shape (N, >={min_dim}), got {tuple(boxes.shape)}')


def box_corners(boxes: ArrayLike) -> ArrayLike:
    """Corners of boxes in our convention.

    Args:
        boxes (ndarray | Tensor): (N, >=7) ``(x, y, z_bottom, l, w, h, yaw, ...)``.

    Returns:
        ndarray | Tensor: (N, 8, 3) corners; indices 0-3 the bottom face, 4-7 the top face,
        each counter-clockwise from the front-left corner (front = +heading).
    """
    _check_boxes(boxes, 7)
    if torch is not None and isinstance(boxes, torch.Tensor):
        unit = torch.as_tensor(_UNIT_CORNERS, dtype=boxes.dtype, device=boxes.device)
        local = unit[None] * boxes[:, None, 3:6]  # (N, 8, 3)
        cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
        x = local[..., 0] * cos[:, None] - local[..., 1] * sin[:, None]
        y = local[..., 0] * sin[:, None] + local[..., 1] * cos[:, None]
        return torch.stack([x, y, local[..., 2]], dim=-1) + boxes[:, None, 0:3]
    boxes = np.asarray(boxes, dtype=np.float64)
    local = _UNIT_CORNERS[None] * boxes[:, None, 3:6]
    cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    x = local[..., 0] * cos[:, None] - local[..., 1] * sin[:, None]
    y = local[..., 0] * sin[:, None] + local[..., 1] * cos[:, None]
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes[:, None, 0:3]


# ----------------------------------------------------------------------------- quaternions
def yaw_to_quaternion(yaw: np.ndarray) -> np.ndarray:
    """Rotation about +z by ``yaw`` as a (w, x, y, z) quaternion.

    Args:
        yaw (ndarray): (N,) or scalar, radians.

    Returns:
        ndarray: (N, 4) (or (4,) for a scalar) quaternions, w >= 0.
    """
    yaw = np.asarray(yaw, dtype=np.float64)
    half = yaw / 2.0
    q = np.stack([np.cos(half), np.zeros_like(half), np.zeros_like(half), np.sin(half)], -1)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(w, x, y, z) quaternions -> rotation matrices.

    Args:
        q (ndarray): (..., 4); normalised here.

    Returns:
        ndarray: (..., 3, 3).
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != 4:
        raise ValueError(f'quaternion: expected shape (..., 4), got {q.shape}')
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def matrix_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """Rotation matrices -> (w, x, y, z) quaternions with w >= 0.

    Uses the numerically stable branch per matrix (largest diagonal term).

    Args:
        rot (ndarray): (..., 3, 3) proper rotations.

    Returns:
        ndarray: (..., 4).
    """
    rot = np.asarray(rot, dtype=np.float64)
    if rot.shape[-2:] != (3, 3):
        raise ValueError(f'rotation: expected shape (..., 3, 3), got {rot.shape}')
    batch = rot.shape[:-2]
    m = rot.reshape(-1, 3, 3)
    q = np.empty((m.shape[0], 4))
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    for i in range(m.shape[0]):
        r = m[i]
        if tr[i] > 0:
            s = 2.0 * np.sqrt(tr[i] + 1.0)
            q[i] = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s,
                    (r[1, 0] - r[0, 1]) / s]
        elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
            s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
            q[i] = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s,
                    (r[0, 2] + r[2, 0]) / s]
        elif r[1, 1] > r[2, 2]:
            s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
            q[i] = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s,
                    (r[1, 2] + r[2, 1]) / s]
        else:
            s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
            q[i] = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s,
                    (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    q = np.where(q[:, :1] < 0, -q, q)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q.reshape(*batch, 4)


def quaternion_to_yaw(q: np.ndarray) -> np.ndarray:
    """Heading of ``R(q) @ [1, 0, 0]`` projected on the xy plane (the devkit's yaw).

    Args:
        q (ndarray): (..., 4) (w, x, y, z).

    Returns:
        ndarray: (...,) radians in (-pi, pi].
    """
    rot = quaternion_to_matrix(q)
    return np.arctan2(rot[..., 1, 0], rot[..., 0, 0])


def pose_matrix(translation: np.ndarray, rotation_wxyz: np.ndarray) -> np.ndarray:
    """A (4, 4) homogeneous transform from a translation (3,) and a (w, x, y, z) quaternion."""
    mat = np.eye(4)
    mat[:3, :3] = quaternion_to_matrix(np.asarray(rotation_wxyz, dtype=np.float64))
    mat[:3, 3] = np.asarray(translation, dtype=np.float64)
    return mat


# ------------------------------------------------------------------ LiDAR <-> global boxes
def lidar_boxes_to_global(boxes: np.ndarray, lidar2global: np.ndarray) -> Dict[str, np.ndarray]:
    """Our LiDAR-frame boxes -> devkit global-frame boxes.

    Args:
        boxes (ndarray): (N, 7) or (N, 9) ``(x, y, z_bottom, l, w, h, yaw[, vx, vy])``.
        lidar2global (ndarray): (4, 4) ``ego2global @ lidar2ego``.

    Returns:
        dict: ``center`` (N, 3) geometric centre, ``size_wlh`` (N, 3), ``rotation`` (N, 4)
        quaternion (w, x, y, z), ``velocity`` (N, 2) global (vx, vy); NaN velocity when the
        input has only 7 columns.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    _check_boxes(boxes, 7)
    lidar2global = np.asarray(lidar2global, dtype=np.float64)
    if lidar2global.shape != (4, 4):
        raise ValueError(f'lidar2global: expected shape (4, 4), got {lidar2global.shape}')
    rot, trans = lidar2global[:3, :3], lidar2global[:3, 3]
    center = boxes[:, 0:3].copy()
    center[:, 2] += boxes[:, 5] / 2.0  # bottom -> geometric centre
    center = center @ rot.T + trans
    box_rot = rot[None] @ quaternion_to_matrix(yaw_to_quaternion(boxes[:, 6]))
    if boxes.shape[1] >= 9:
        vel = np.concatenate([boxes[:, 7:9], np.zeros((len(boxes), 1))], axis=1) @ rot.T
        velocity = vel[:, :2]
    else:
        velocity = np.full((len(boxes), 2), np.nan)
    return dict(center=center, size_wlh=boxes[:, [4, 3, 5]].copy(),
                rotation=matrix_to_quaternion(box_rot), velocity=velocity)


def global_boxes_to_lidar(center: np.ndarray, size_wlh: np.ndarray, rotation: np.ndarray,
                          velocity: np.ndarray, lidar2global: np.ndarray) -> np.ndarray:
    """Devkit global-frame boxes -> our LiDAR-frame boxes.

    Roll and pitch of the box relative to the LiDAR frame are dropped (the yaw is the heading
    of the box's x axis projected on the LiDAR xy plane), as mmdet3d's converters do.

    Args:
        center (ndarray): (N, 3) geometric centres, global.
        size_wlh (ndarray): (N, 3) ``(w, l, h)``.
        rotation (ndarray): (N, 4) quaternions (w, x, y, z), global.
        velocity (ndarray): (N, 2) global ``(vx, vy)`` (NaN allowed).
        lidar2global (ndarray): (4, 4).

    Returns:
        ndarray: (N, 9) ``(x, y, z_bottom, l, w, h, yaw, vx, vy)`` in the LiDAR frame.
    """
    center = np.asarray(center, dtype=np.float64).reshape(-1, 3)
    n = len(center)
    size_wlh = np.asarray(size_wlh, dtype=np.float64).reshape(n, 3)
    rotation = np.asarray(rotation, dtype=np.float64).reshape(n, 4)
    velocity = np.asarray(velocity, dtype=np.float64).reshape(n, 2)
    lidar2global = np.asarray(lidar2global, dtype=np.float64)
    if lidar2global.shape != (4, 4):
        raise ValueError(f'lidar2global: expected shape (4, 4), got {lidar2global.shape}')
    rot, trans = lidar2global[:3, :3], lidar2global[:3, 3]
    # p_lidar = R^T (p_global - t), written for row vectors.
    center_l = (center - trans) @ rot
    box_rot = rot.T[None] @ quaternion_to_matrix(rotation)
    yaw = np.arctan2(box_rot[:, 1, 0], box_rot[:, 0, 0])
    vel = np.concatenate([velocity, np.zeros((n, 1))], axis=1) @ rot
    out = np.zeros((n, 9))
    out[:, 0:3] = center_l
    out[:, 2] -= size_wlh[:, 2] / 2.0  # geometric centre -> bottom
    out[:, 3:6] = size_wlh[:, [1, 0, 2]]
    out[:, 6] = yaw
    out[:, 7:9] = vel[:, :2]
    return out


def limit_angle(angle: np.ndarray, period: float = 2 * np.pi) -> np.ndarray:
    """Wrap angles into [-period / 2, period / 2)."""
    return (np.asarray(angle) + period / 2) % period - period / 2


def boxes_from_mmdet3d_v017(boxes: np.ndarray) -> np.ndarray:
    """Boxes of mmdet3d v0.17 (the original BEVFormer's ``LiDARInstance3DBoxes``) in our convention.

    mmdet3d v0.17 stores ``(x, y, z_bottom, w, l, h, a[, vx, vy])`` in the LiDAR frame with
    ``a = -yaw - pi / 2`` (its converter writes ``-yaw_devkit - pi / 2``); ours is
    ``(x, y, z_bottom, l, w, h, yaw[, vx, vy])`` with ``yaw`` the devkit yaw. The result's yaw
    is wrapped to [-pi, pi).

    Args:
        boxes (ndarray): (N, 7) or (N, 9) mmdet3d v0.17 boxes.

    Returns:
        ndarray: (N, 7) or (N, 9) float64 boxes in our convention.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] not in (7, 9):
        raise ValueError(f'boxes_from_mmdet3d_v017: expected shape (N, 7) or (N, 9), got '
                         f'{tuple(boxes.shape)}')
    out = boxes.copy()
    out[:, 3], out[:, 4] = boxes[:, 4], boxes[:, 3]
    out[:, 6] = limit_angle(-boxes[:, 6] - np.pi / 2)
    return out


def mmdet3d_info_yaw(box_rot: np.ndarray) -> np.ndarray:
    """The yaw mmdet3d's nuScenes converters store for a box rotation in the LiDAR frame.

    They write ``Quaternion.yaw_pitch_roll[0]`` (pyquaternion), ``atan2(-R[0, 1], R[0, 0])``;
    our yaw is ``atan2(R[1, 0], R[0, 0])``: equal when the box is upright (R a rotation about z).

    Args:
        box_rot (ndarray): (..., 3, 3) box rotations in the LiDAR frame.

    Returns:
        ndarray: (...,) radians in (-pi, pi].
    """
    box_rot = np.asarray(box_rot, dtype=np.float64)
    return np.arctan2(-box_rot[..., 0, 1], box_rot[..., 0, 0])


def boxes_from_mmdet3d_infos(boxes: np.ndarray, convention: str) -> np.ndarray:
    """``gt_boxes`` / ``bbox_3d`` as mmdet3d-style nuScenes info files store them -> ours.

    Info files hold the **geometric centre** (the devkit box centre in the LiDAR frame); the
    datasets move z to the bottom when they read them (``origin=(0.5, 0.5, 0.5)``):

    - ``'v0.17'``: the original BEVFormer's ``*_infos_temporal_*.pkl`` (mmdet3d v0.17's
      converter): ``(x, y, z_centre, w, l, h, -yaw - pi / 2)``;
    - ``'v1.x'``: mmdet3d 1.x (``*_infos_*.pkl`` of its converter and the "v2" infos of
      ``update_infos_to_v2.py``): ``(x, y, z_centre, l, w, h, yaw)``;

    with ``yaw`` pyquaternion's ``yaw_pitch_roll[0]`` of the box rotation in the LiDAR frame in
    both (:func:`mmdet3d_info_yaw`). Ours is ``(x, y, z_bottom, l, w, h, yaw)``
    (docs/data_format.md), whose yaw is the heading of the box's x axis on the LiDAR xy plane:
    the two are equal for a box upright in the LiDAR frame and differ at second order in its
    tilt (nuScenes boxes tilt with the road as the ego does; the real key frame of tests/data:
    < 1e-6 rad). Given the box's full rotation, take the exact value from
    :func:`global_boxes_to_lidar`.

    Args:
        boxes (ndarray): (N, 7) or (N, 9) (velocity columns are copied).
        convention (str): ``'v0.17'`` or ``'v1.x'``.

    Returns:
        ndarray: (N, 7) or (N, 9) float64 in our convention; the yaw of ``'v0.17'`` is wrapped
        to [-pi, pi), that of ``'v1.x'`` kept as stored.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 7)
    if boxes.ndim != 2 or boxes.shape[1] not in (7, 9):
        raise ValueError(f'boxes_from_mmdet3d_infos: expected shape (N, 7) or (N, 9), got '
                         f'{tuple(boxes.shape)}')
    bottom = boxes.copy()
    bottom[:, 2] -= boxes[:, 5] / 2.0  # geometric centre -> bottom face (h is column 5 in both)
    if convention == 'v0.17':
        return boxes_from_mmdet3d_v017(bottom)
    if convention == 'v1.x':
        return bottom
    raise ValueError(f"boxes_from_mmdet3d_infos: convention must be 'v0.17' or 'v1.x', got "
                     f'{convention!r}')
