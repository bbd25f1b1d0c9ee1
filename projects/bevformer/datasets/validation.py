"""Sanity checks of one frame's geometry and ground truth, run once where info files are read.

Each check returns a list of problems (empty when the value is fine), each naming the key and
what is wrong, so the caller can name the file and sample around it. A NaN in a pose, a
singular projection or a box of zero size would otherwise train silently into a NaN loss or a
blind camera (issue 12's cases).
"""
from typing import List

import numpy as np

#: tolerance on ``R^T R = I`` and ``det R = 1`` for a rotation stored as float64 from
#: quaternions (nuScenes stores them with ~1e-9 error)
ROTATION_TOL = 1e-3


def check_pose(name: str, mat: np.ndarray) -> List[str]:
    """A rigid 4x4 transform: finite, last row (0, 0, 0, 1), a proper rotation."""
    if not np.isfinite(mat).all():
        return [f'{name} has non-finite values']
    problems = []
    if not np.allclose(mat[3], [0, 0, 0, 1], atol=1e-6):
        problems.append(f'{name} last row is {mat[3].tolist()}, expected [0, 0, 0, 1]')
    rot = mat[:3, :3]
    if (np.abs(rot.T @ rot - np.eye(3)).max() > ROTATION_TOL
            or abs(np.linalg.det(rot) - 1) > ROTATION_TOL):
        problems.append(f'{name} rotation is not a rotation (det {np.linalg.det(rot):.4g}, '
                        f'not orthonormal): a zero, scaled or reflected matrix')
    return problems


def check_intrinsics(name: str, mat: np.ndarray) -> List[str]:
    """A 3x3 camera matrix: finite, focal lengths > 0."""
    if not np.isfinite(mat).all():
        return [f'{name} has non-finite values']
    if mat[0, 0] <= 0 or mat[1, 1] <= 0:
        return [f'{name} focal lengths must be > 0, got fx={mat[0, 0]}, fy={mat[1, 1]}']
    return []


def check_projection(name: str, mat: np.ndarray) -> List[str]:
    """A 4x4 LiDAR -> pixel projection: finite and of full rank (a camera that can see)."""
    if not np.isfinite(mat).all():
        return [f'{name} has non-finite values']
    block = mat[:3, :3]
    scale = max(np.abs(block).max(), 1e-12)
    if abs(np.linalg.det(block / scale)) < 1e-9:
        return [f'{name} is singular (rank < 3): the camera would see nothing']
    return []


def check_vector(name: str, vec: np.ndarray) -> List[str]:
    """Any vector that must be finite (e.g. can_bus)."""
    bad = np.flatnonzero(~np.isfinite(vec))
    return [f'{name} has non-finite values at {bad.tolist()}'] if len(bad) else []


def check_boxes(boxes: np.ndarray, velocities: np.ndarray) -> List[str]:
    """Boxes ``(M, 7)`` ``(x, y, z, l, w, h, yaw)`` and velocities ``(M, 2)``.

    Centre, size and yaw must be finite and the sizes > 0; a velocity may be NaN (unknown,
    masked in the loss) but not infinite.
    """
    problems = []
    for j, (box, vel) in enumerate(zip(boxes, velocities)):
        where = f'instances[{j}]'
        if not np.isfinite(box).all():
            problems.append(f'{where}.bbox_3d has non-finite values {box.tolist()}')
        elif (box[3:6] <= 0).any():
            problems.append(f'{where}.bbox_3d size (l, w, h) must be > 0, got '
                            f'{box[3:6].tolist()}')
        if np.isinf(vel).any():
            problems.append(f'{where}.velocity is infinite {vel.tolist()}')
    return problems
