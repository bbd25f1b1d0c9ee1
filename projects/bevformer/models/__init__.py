"""BEVFormer models: layers (BEV encoder), heads, task modules, detectors, data preprocessors."""
from . import data_preprocessors, detectors, heads, layers, task_modules, utils  # noqa: F401
