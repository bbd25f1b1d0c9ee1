"""Multi-scale deformable attention, deformable encoder/decoder, Deformable DETR (2D),
NMS / Soft-NMS. Importing this package registers its modules into mmdet's registries."""
import projects.common  # noqa: F401  (safe checkpoints, CPU DDP)

from . import datasets, models, ops  # noqa: F401
