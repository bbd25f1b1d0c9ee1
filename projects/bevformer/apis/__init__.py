"""Inference outside the dataset: ``init_model``, the multi-camera inferencer and the
optional CPU speed-ups of the image backbone."""
from .fast_inference import OptimizeForInferenceHook, optimize_for_cpu_inference
from .inference import (BEVFormerInferencer, CalibrationError, frame_to_results, init_model,
                        load_frame)

__all__ = ['BEVFormerInferencer', 'CalibrationError', 'OptimizeForInferenceHook',
           'frame_to_results', 'init_model', 'load_frame', 'optimize_for_cpu_inference']
