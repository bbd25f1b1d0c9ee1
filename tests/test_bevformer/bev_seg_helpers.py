"""Shared by the BEV segmentation tests (geometry/rasterize, the LoadBEVSegLabels transform,
BEVSegMetric, joint det + seg training): the BEV range, the map classes, and the global xy
of the BEV cell centres."""
import numpy as np

PC_RANGE = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
CLASSES = ('drivable_area', 'ped_crossing', 'walkway', 'divider')


def cell_centres_global(lidar2global, bev_h, bev_w, pc_range=PC_RANGE):
    """(bev_h, bev_w, 2) global xy of the cell centres, through the full 4x4 pose."""
    dx = (pc_range[3] - pc_range[0]) / bev_w
    dy = (pc_range[4] - pc_range[1]) / bev_h
    rows, cols = np.meshgrid(np.arange(bev_h), np.arange(bev_w), indexing='ij')
    pts = np.stack([pc_range[0] + (cols + 0.5) * dx, pc_range[1] + (rows + 0.5) * dy,
                    np.zeros_like(rows, float), np.ones_like(rows, float)], -1)
    return (pts @ np.asarray(lidar2global).T)[..., :2]
