"""The generator's own rotation and pose maths: on purpose not geometry/boxes.py's (see the
comment in this package's ``__init__``)."""
from typing import List, Sequence

import numpy as np


def yaw_quat(yaw: float) -> List[float]:
    """Rotation about +z by ``yaw`` as a (w, x, y, z) quaternion (list, w may be negative)."""
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def quat_to_mat(q: Sequence[float]) -> np.ndarray:
    """(w, x, y, z) quaternion (normalised here) -> (3, 3) rotation matrix."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def pose_from_quat(translation: Sequence[float], rotation: Sequence[float]) -> np.ndarray:
    """(4, 4) sensor -> parent transform from a translation (3,) and a (w, x, y, z) quaternion."""
    mat = np.eye(4)
    mat[:3, :3] = quat_to_mat(rotation)
    mat[:3, 3] = translation
    return mat
