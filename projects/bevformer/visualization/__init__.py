"""Visualisation of 3D boxes on the cameras and in BEV (GT and predictions)."""
from .hook import BEVVisualizationHook
from .info_viewer import visualize_infos
from .multiview import BOX_EDGES, draw_sample, project_box_edges
from .predictions import load_predictions
from .score_threshold import ScoreThreshold, choose_score_threshold

__all__ = ['BEVVisualizationHook', 'draw_sample', 'project_box_edges', 'BOX_EDGES', 'load_predictions',
           'ScoreThreshold', 'choose_score_threshold', 'visualize_infos']
