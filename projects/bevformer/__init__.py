"""BEVFormer on mmengine / mmdet 3.x: geometry, nuScenes data, BEV encoder, heads, metrics.
Importing this package registers its modules into mmdet's registries."""
import projects.deformable_detr  # noqa: F401  (bevformer builds on it; never the reverse)

from . import datasets, evaluation, models, structures, visualization  # noqa: F401
