"""Inference outside the dataset: ``init_model`` and the multi-camera inferencer."""
from .inference import (BEVFormerInferencer, CalibrationError, frame_to_results, init_model,
                        load_frame)

__all__ = ['BEVFormerInferencer', 'CalibrationError', 'frame_to_results', 'init_model',
           'load_frame']
