"""Camera geometry: ``lidar2img`` matrices, how image transforms change them, projection.

Conventions (docs/data_format.md):

- ``lidar2img = cam2img4 @ lidar2cam`` (4, 4), applied to column vectors
  ``(x, y, z, 1)`` in the LiDAR frame; the result ``(u * d, v * d, d, 1)`` gives the pixel
  ``(u, v)`` and the depth ``d`` (metres along the optical axis).
- Pixel coordinates are continuous with **pixel edges at integers**: pixel ``(row, col)``
  covers ``u in [col, col + 1)``, ``v in [row, row + 1)``. In this convention a resize by
  ``(sx, sy)`` (``cv2.resize`` / ``mmcv.imresize``, which align pixel areas) maps
  ``u -> sx * u`` exactly, and the feature sampling ``u / W`` with ``grid_sample(...,
  align_corners=False)`` in the encoder agrees with it (see ``geometry/bev.py``).
- An image transform is a 4x4 affine ``A`` acting on ``(u*d, v*d, d, 1)``; the new
  projection is ``A @ lidar2img`` (and ``A[:3, :3] @ cam2img`` for the intrinsics).

Every function accepts numpy arrays or torch Tensors (returned as the same type) unless
stated otherwise, and is pure.
"""
from typing import Sequence, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def _check_mats(mat: ArrayLike, size: int, name: str) -> None:
    if mat.ndim < 2 or tuple(mat.shape[-2:]) != (size, size):
        raise ValueError(f'camera.py: {name} must be (..., {size}, {size}), got '
                         f'{tuple(mat.shape)}')


def cam2img_to_4x4(cam2img: ArrayLike) -> ArrayLike:
    """Pad 3x3 intrinsics to the 4x4 ``cam2img4`` used in ``lidar2img = cam2img4 @ lidar2cam``.

    Args:
        cam2img (ndarray | Tensor): (..., 3, 3).

    Returns:
        ndarray | Tensor: (..., 4, 4) with the 3x3 block top-left and 1 at [3, 3].
    """
    _check_mats(cam2img, 3, 'cam2img')
    if isinstance(cam2img, torch.Tensor):
        out = torch.zeros(*cam2img.shape[:-2], 4, 4, dtype=cam2img.dtype, device=cam2img.device)
    else:
        cam2img = np.asarray(cam2img)
        out = np.zeros(cam2img.shape[:-2] + (4, 4), dtype=np.result_type(cam2img, np.float32))
    out[..., :3, :3] = cam2img
    out[..., 3, 3] = 1
    return out


def compose_lidar2img(cam2img: ArrayLike, lidar2cam: ArrayLike) -> ArrayLike:
    """``lidar2img = cam2img4 @ lidar2cam``.

    Args:
        cam2img (ndarray | Tensor): (..., 3, 3) intrinsics.
        lidar2cam (ndarray | Tensor): (..., 4, 4) LiDAR -> camera transform.

    Returns:
        ndarray | Tensor: (..., 4, 4).
    """
    _check_mats(lidar2cam, 4, 'lidar2cam')
    return cam2img_to_4x4(cam2img) @ lidar2cam


def image_affine(scale: Sequence[float] = (1.0, 1.0),
                 offset: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """The 4x4 image-space affine ``u' = sx * u + dx, v' = sy * v + dy``.

    It acts on the homogeneous projection ``(u*d, v*d, d, 1)``, so the depth row is kept.

    Args:
        scale (pair of float): ``(sx, sy)``; a resize from (W, H) to (W', H') is
            ``(W' / W, H' / H)``.
        offset (pair of float): ``(dx, dy)`` in pixels of the output; a crop whose top-left
            corner is ``(x0, y0)`` is ``(-x0, -y0)``.

    Returns:
        ndarray: (4, 4) float64.
    """
    sx, sy = (float(v) for v in scale)
    dx, dy = (float(v) for v in offset)
    aff = np.eye(4)
    aff[0, 0], aff[1, 1] = sx, sy
    aff[0, 2], aff[1, 2] = dx, dy
    return aff


def apply_image_affine(mat: ArrayLike, affine: ArrayLike) -> ArrayLike:
    """Apply an image-space affine to projection matrices.

    Args:
        mat (ndarray | Tensor): (..., 4, 4) ``lidar2img`` or (..., 3, 3) ``cam2img``.
        affine (ndarray | Tensor): (4, 4) from :func:`image_affine`.

    Returns:
        ndarray | Tensor: same shape and type as ``mat``: ``affine @ mat`` (the 3x3 block of
        ``affine`` for intrinsics).
    """
    _check_mats(affine, 4, 'affine')
    if mat.ndim < 2 or tuple(mat.shape[-2:]) not in ((4, 4), (3, 3)):
        raise ValueError(f'camera.py: mat must be (..., 4, 4) or (..., 3, 3), got '
                         f'{tuple(mat.shape)}')
    k = mat.shape[-1]
    if isinstance(mat, torch.Tensor):
        aff = torch.as_tensor(affine, dtype=mat.dtype, device=mat.device)
    else:
        aff = np.asarray(affine, dtype=np.result_type(mat, np.float64))
    return aff[:k, :k] @ mat


def scale_lidar2img(mat: ArrayLike, scale: Sequence[float]) -> ArrayLike:
    """Update ``lidar2img`` (or ``cam2img``) for a resize by ``scale = (sx, sy)``.

    Args:
        mat (ndarray | Tensor): (..., 4, 4) or (..., 3, 3).
        scale (pair of float): ``(W' / W, H' / H)``.

    Returns:
        ndarray | Tensor: same shape as ``mat``.
    """
    return apply_image_affine(mat, image_affine(scale=scale))


def crop_lidar2img(mat: ArrayLike, top_left: Sequence[float]) -> ArrayLike:
    """Update ``lidar2img`` (or ``cam2img``) for a crop whose top-left pixel is ``(x0, y0)``.

    Args:
        mat (ndarray | Tensor): (..., 4, 4) or (..., 3, 3).
        top_left (pair of float): ``(x0, y0)`` of the crop in the input image.

    Returns:
        ndarray | Tensor: same shape as ``mat``.
    """
    x0, y0 = (float(v) for v in top_left)
    return apply_image_affine(mat, image_affine(offset=(-x0, -y0)))


def to_image_homogeneous(points: ArrayLike, lidar2img: ArrayLike) -> ArrayLike:
    """``lidar2img @ (x, y, z, 1)`` without the last row: ``(u * d, v * d, d)``.

    Computed as an elementwise product summed over the last axis, not as a matmul, so a
    float32 input is projected in exact float32 arithmetic whatever the TF32 / BLAS
    settings (the encoder's sampling locations depend on it bit for bit). Leading
    dimensions broadcast like matmul, e.g. points (P, 3) with lidar2img (N_cam, 4, 4) ->
    (N_cam, P, 3); or points (bs, 1, P, 3) with (bs, N_cam, 4, 4).

    Args:
        points (ndarray | Tensor): (..., P, 3) in the LiDAR frame.
        lidar2img (ndarray | Tensor): (..., 4, 4).

    Returns:
        ndarray | Tensor: (..., P, 3) in the dtype of ``points`` (torch) or float64 (numpy).
    """
    if points.shape[-1] != 3:
        raise ValueError(f'camera.py: points must be (..., P, 3), got {tuple(points.shape)}')
    _check_mats(lidar2img, 4, 'lidar2img')
    if isinstance(points, torch.Tensor):
        mat = torch.as_tensor(lidar2img, dtype=points.dtype, device=points.device)
        hom = torch.cat((points, torch.ones_like(points[..., :1])), dim=-1)
    else:
        mat = np.asarray(lidar2img, dtype=np.float64)
        points = np.asarray(points, dtype=np.float64)
        hom = np.concatenate((points, np.ones_like(points[..., :1])), axis=-1)
    # (..., 1, 3, 4) * (..., P, 1, 4) summed over the last axis -> (..., P, 3)
    return (mat[..., None, :3, :] * hom[..., :, None, :]).sum(-1)


def from_image_homogeneous(hom: ArrayLike, eps: float = 1e-5) -> Tuple[ArrayLike, ArrayLike]:
    """``(u * d, v * d, d)`` -> pixel ``(u, v)`` and depth ``d``.

    Args:
        hom (ndarray | Tensor): (..., 3) from :func:`to_image_homogeneous`.
        eps (float): the depth is clamped to at least ``eps`` before the division, so points
            behind the camera give finite (meaningless) pixels; use the depth to mask them.

    Returns:
        tuple: ``uv`` (..., 2) and ``depth`` (...).
    """
    depth = hom[..., 2]
    if isinstance(hom, torch.Tensor):
        return hom[..., :2] / depth.clamp(min=eps)[..., None], depth
    return hom[..., :2] / np.maximum(depth, eps)[..., None], depth


def project_points(points: ArrayLike, lidar2img: ArrayLike,
                   eps: float = 1e-5) -> Tuple[ArrayLike, ArrayLike]:
    """Project LiDAR-frame points to pixels: the one projection of this code base (the BEV
    encoder's pillar points, the visualiser, the tests); :func:`visibility_mask` is its one
    image-boundary rule.

    Leading dimensions broadcast like matmul (see :func:`to_image_homogeneous`).

    Args:
        points (ndarray | Tensor): (..., P, 3) in the LiDAR frame.
        lidar2img (ndarray | Tensor): (..., 4, 4).
        eps (float): minimum depth of the division (see :func:`from_image_homogeneous`).

    Returns:
        tuple: ``uv`` (..., P, 2) pixel coordinates and ``depth`` (..., P).
    """
    return from_image_homogeneous(to_image_homogeneous(points, lidar2img), eps)


def visibility_mask(uv: ArrayLike, depth: ArrayLike, img_shape: Union[Sequence[int], ArrayLike],
                    min_depth: float = 1e-5) -> ArrayLike:
    """Which projected points land inside the image in front of the camera.

    The rule is the original BEVFormer's pillar mask, kept exactly by the encoder: strictly
    inside, ``depth > min_depth`` and ``0 < u < W, 0 < v < H`` (a point on the image's
    border, e.g. ``u == 0``, is outside).

    Args:
        uv (ndarray | Tensor): (..., 2) pixel coordinates from :func:`project_points`.
        depth (ndarray | Tensor): (...) depths.
        img_shape: (H, W) of the valid image (before padding), or an array / tensor
            (..., 2) of (H, W) that broadcasts against ``uv`` (e.g. one shape per sample).
        min_depth (float): points at depth <= this are not visible.

    Returns:
        ndarray | Tensor: (...) bool.
    """
    if uv.shape[-1] != 2 or tuple(uv.shape[:-1]) != tuple(depth.shape):
        raise ValueError(f'camera.py: uv must be (..., 2) matching depth (...), got '
                         f'{tuple(uv.shape)} and {tuple(depth.shape)}')
    if isinstance(uv, torch.Tensor):
        img_wh = torch.as_tensor(img_shape, dtype=uv.dtype, device=uv.device).flip(-1)
    else:
        img_wh = np.asarray(img_shape, dtype=np.float64)[..., ::-1]
    return (depth > min_depth) & (uv > 0).all(-1) & (uv < img_wh).all(-1)
