"""Visualisation of 3D boxes on the cameras and in BEV (GT and predictions)."""
from .info_viewer import visualize_infos
from .multiview import BOX_EDGES, draw_sample, project_box_edges
from .predictions import load_predictions

__all__ = ['draw_sample', 'project_box_edges', 'BOX_EDGES', 'load_predictions',
           'visualize_infos']
