"""Draw 3D boxes (our LiDAR-frame convention) on the six cameras and in a BEV plot.

Pure drawing: callers pass images, ``lidar2img`` and boxes; nothing is read from disk here.
Rendering uses matplotlib's Agg canvas directly (no pyplot global state).
"""
from typing import Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..geometry.boxes import box_corners
from ..geometry.camera import (from_image_homogeneous, project_points, to_image_homogeneous,
                               visibility_mask)

# Corner indices of box_corners: 0-3 bottom face, 4-7 top face, counter-clockwise from the
# front-left corner. The cross on the front face (0-7, 3-4) shows the heading.
BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5),
             (2, 6), (3, 7), (0, 7), (3, 4))
# Where each camera goes in the 2 x 3 grid (the usual nuScenes arrangement).
CAMERA_GRID = {'CAM_FRONT_LEFT': (0, 0), 'CAM_FRONT': (0, 1), 'CAM_FRONT_RIGHT': (0, 2),
               'CAM_BACK_LEFT': (1, 0), 'CAM_BACK': (1, 1), 'CAM_BACK_RIGHT': (1, 2)}
GT_COLOR = (0.1, 0.9, 0.2)
PRED_COLOR = (1.0, 0.15, 0.1)
# Depth (m) of the drawings' near plane: box edges are clipped there; a label is drawn where
# its point is visible by geometry/camera.py's rule with this minimum depth.
NEAR = 0.1


def project_box_edges(boxes: np.ndarray, lidar2img: np.ndarray,
                      near: float = NEAR) -> Tuple[np.ndarray, np.ndarray]:
    """Project the edges of 3D boxes into one camera, clipped at the near plane.

    An edge with one end behind ``near`` is cut where it crosses the plane (in homogeneous
    image coordinates, where the cut is exact); an edge fully behind is marked invalid.

    Args:
        boxes (ndarray): (M, >=7) ``(x, y, z_bottom, l, w, h, yaw, ...)`` LiDAR frame.
        lidar2img (ndarray): (4, 4).
        near (float): depth (m) of the clipping plane.

    Returns:
        tuple: ``segments`` (M, E, 2, 2) pixel end points ``(u, v)`` of the E =
        len(BOX_EDGES) edges, and ``valid`` (M, E) bool.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, np.shape(boxes)[-1])
    lidar2img = np.asarray(lidar2img, dtype=np.float64)
    if lidar2img.shape != (4, 4):
        raise ValueError(f'project_box_edges: lidar2img must be (4, 4), got {lidar2img.shape}')
    num_edges = len(BOX_EDGES)
    if len(boxes) == 0:
        return np.zeros((0, num_edges, 2, 2)), np.zeros((0, num_edges), dtype=bool)
    hom = to_image_homogeneous(box_corners(boxes), lidar2img)  # (M, 8, 3): (u*d, v*d, d)
    idx = np.array(BOX_EDGES)
    p0, p1 = hom[:, idx[:, 0]], hom[:, idx[:, 1]]  # (M, E, 3)
    d0, d1 = p0[..., 2], p1[..., 2]
    valid = (d0 > near) | (d1 > near)
    # Move the end behind the plane onto it: p = p_a + t (p_b - p_a) with depth == near.
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (near - d0) / (d1 - d0)
    cut0 = p0 + np.clip(t, 0, 1)[..., None] * (p1 - p0)
    cut1 = p1 + np.clip(1 - t, 0, 1)[..., None] * (p0 - p1)
    p0 = np.where((d0 <= near)[..., None], cut0, p0)
    p1 = np.where((d1 <= near)[..., None], cut1, p1)
    uv, _ = from_image_homogeneous(np.stack([p0, p1], axis=2), eps=near)  # (M, E, 2, 2)
    return uv, valid


def _draw_camera(ax, img: np.ndarray, lidar2img: np.ndarray, name: str, box_sets) -> None:
    h, w = img.shape[:2]
    ax.imshow(img)
    for boxes, color, texts in box_sets:
        if boxes is None or len(boxes) == 0:
            continue
        segs, valid = project_box_edges(boxes, lidar2img)
        centres = boxes[:, :3].copy()
        centres[:, 2] += boxes[:, 5]  # label at the top-face centre
        label_uv, label_depth = project_points(centres, lidar2img, eps=NEAR)
        label_shown = visibility_mask(label_uv, label_depth, (h, w), min_depth=NEAR)
        for i in range(len(boxes)):
            if not valid[i].any():
                continue
            seg = segs[i][valid[i]]
            # Skip boxes whose projected extent does not overlap the open image (0, W) x (0, H).
            if (seg[..., 0].max() <= 0 or seg[..., 0].min() >= w or seg[..., 1].max() <= 0
                    or seg[..., 1].min() >= h):
                continue
            for (u0, v0), (u1, v1) in seg:
                ax.plot([u0, u1], [v0, v1], color=color, linewidth=1.0)
            if texts is not None and label_shown[i]:
                ax.text(*label_uv[i], texts[i], color=color, fontsize=5, ha='center',
                        va='bottom')
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_title(name, fontsize=8)
    ax.axis('off')


def _draw_bev(ax, box_sets, points: Optional[np.ndarray], bev_range: float) -> None:
    if points is not None and len(points):
        near = (np.abs(points[:, 0]) < bev_range) & (np.abs(points[:, 1]) < bev_range)
        ax.scatter(points[near, 0], points[near, 1], s=0.05, c='0.6', linewidths=0)
    for boxes, color, _ in box_sets:
        if boxes is None or len(boxes) == 0:
            continue
        corners = box_corners(np.asarray(boxes, dtype=np.float64))[:, :4, :2]  # bottom face
        for c in corners:
            ring = np.vstack([c, c[:1]])
            ax.plot(ring[:, 0], ring[:, 1], color=color, linewidth=0.8)
            front = (c[0] + c[3]) / 2  # the front edge's midpoint: heading tick
            centre = c.mean(0)
            ax.plot([centre[0], front[0]], [centre[1], front[1]], color=color, linewidth=0.8)
    ax.plot([0], [0], marker='^', color='k', markersize=5)
    ax.set_xlim(-bev_range, bev_range)
    ax.set_ylim(-bev_range, bev_range)
    ax.set_aspect('equal')
    ax.set_xlabel('LiDAR x (m)', fontsize=7)
    ax.set_ylabel('LiDAR y (m)', fontsize=7)
    ax.tick_params(labelsize=6)
    ax.set_title('BEV (green: GT, red: prediction)', fontsize=8)


def draw_sample(imgs: Sequence[np.ndarray],
                lidar2img: np.ndarray,
                cam_names: Sequence[str],
                gt_boxes: Optional[np.ndarray] = None,
                gt_labels: Optional[np.ndarray] = None,
                pred_boxes: Optional[np.ndarray] = None,
                pred_scores: Optional[np.ndarray] = None,
                pred_labels: Optional[np.ndarray] = None,
                classes: Optional[Sequence[str]] = None,
                points: Optional[np.ndarray] = None,
                bev_range: float = 51.2,
                title: str = '',
                legend: Optional[Tuple[str, str]] = None,
                out_file: Optional[str] = None,
                dpi: int = 100) -> Figure:
    """Draw GT and / or predicted boxes on every camera and in BEV; optionally save a PNG.

    Args:
        imgs (sequence of ndarray): N_cam RGB images (H, W, 3) uint8.
        lidar2img (ndarray): (N_cam, 4, 4) for these images.
        cam_names (sequence of str): N_cam channel names (placement in the grid).
        gt_boxes (ndarray, optional): (M, >=7) LiDAR frame; ``gt_labels`` (M,).
        pred_boxes (ndarray, optional): (K, >=7); ``pred_scores`` (K,), ``pred_labels`` (K,).
        classes (sequence of str, optional): names for the labels of predictions.
        points (ndarray, optional): (P, >=2) LiDAR points for the BEV background.
        bev_range (float): half-size (m) of the BEV plot.
        title (str): figure title.
        legend (tuple of str, optional): ``(GT text, prediction text)``: a legend line with
            the two colours under the panels (an empty text leaves its entry out).
        out_file (str, optional): PNG path to write.
        dpi (int): resolution of the saved figure.

    Returns:
        Figure: the matplotlib figure (Agg canvas).
    """
    lidar2img = np.asarray(lidar2img, dtype=np.float64)
    if len(imgs) != len(cam_names) or lidar2img.shape != (len(imgs), 4, 4):
        raise ValueError(f'draw_sample: {len(imgs)} images, {len(cam_names)} camera names and '
                         f'lidar2img {lidar2img.shape} must agree (N_cam, 4, 4)')
    pred_texts = None
    if pred_boxes is not None and len(pred_boxes):
        labels = pred_labels if pred_labels is not None else np.zeros(len(pred_boxes), int)
        scores = pred_scores if pred_scores is not None else np.ones(len(pred_boxes))
        names = [classes[int(l)] if classes is not None and 0 <= int(l) < len(classes)
                 else str(int(l)) for l in labels]
        pred_texts = [f'{n} {s:.2f}' for n, s in zip(names, scores)]
    box_sets = [(None if gt_boxes is None else np.asarray(gt_boxes, np.float64), GT_COLOR, None),
                (None if pred_boxes is None else np.asarray(pred_boxes, np.float64), PRED_COLOR,
                 pred_texts)]
    fig = Figure(figsize=(22, 6.2))
    FigureCanvasAgg(fig)
    outer = fig.add_gridspec(1, 2, width_ratios=[3, 1], wspace=0.1)
    grid = outer[0].subgridspec(2, 3, wspace=0.03, hspace=0.08)
    for i, (img, name) in enumerate(zip(imgs, cam_names)):
        row, col = CAMERA_GRID.get(name, divmod(i, 3))
        _draw_camera(fig.add_subplot(grid[row, col]), img, lidar2img[i], name, box_sets)
    _draw_bev(fig.add_subplot(outer[1]), box_sets, points, bev_range)
    if title:
        fig.suptitle(title, fontsize=9)
    if legend is not None:
        handles = [Line2D([], [], color=color, linewidth=2, label=text)
                   for color, text in zip((GT_COLOR, PRED_COLOR), legend) if text]
        fig.legend(handles=handles, loc='upper center', bbox_to_anchor=(0.5, 0.06),
                   ncol=max(len(handles), 1), fontsize=9, frameon=False)
    if out_file is not None:
        fig.savefig(out_file, dpi=dpi, bbox_inches='tight')
    return fig
