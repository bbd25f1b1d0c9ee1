"""Perspective pretraining: backbone + neck + PerspectiveHead trained alone on camera images.

The original BEVFormer small / base start from an FCOS3D backbone (monocular 3D detection);
this is our counterpart on any dataset this code base reads: it learns where objects are, how
large and how far, in each camera, from the same 3D ground truth. A BEVFormer config then
starts from its weights with::

    img_backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=CKPT, prefix='img_backbone.'))
    img_neck=dict(init_cfg=dict(type='Pretrained', checkpoint=CKPT, prefix='img_neck.'))
"""
from typing import Dict, List

from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

from .multiview_features import MultiViewFeaturesMixin


@MODELS.register_module()
class PerspectivePretrainer(MultiViewFeaturesMixin, BaseDetector):
    """Train ``img_backbone`` / ``img_neck`` with a ``PerspectiveHead`` on the current frame.

    Args:
        img_backbone (dict): image backbone (same config as the BEVFormer it initialises).
        perspective_head (dict): ``PerspectiveHead``.
        img_neck (dict, optional): neck (same config as the BEVFormer it initialises).
        use_grid_mask (bool): GridMask on the images in training.
        grid_mask (dict): GridMask arguments.
        img_channels_last (bool): images enter the backbone in NHWC memory order (as BEVFormer's).
        data_preprocessor (dict): ``BEVDataPreprocessor`` (inputs as for BEVFormer; only the
            current frame is used).
    """

    def __init__(self,
                 img_backbone: ConfigType,
                 perspective_head: ConfigType,
                 img_neck: OptConfigType = None,
                 use_grid_mask: bool = False,
                 grid_mask: OptConfigType = None,
                 img_channels_last: bool = False,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.img_channels_last = img_channels_last
        self.img_backbone = MODELS.build(img_backbone)
        self.img_neck = MODELS.build(img_neck) if img_neck is not None else None
        self.perspective_head = MODELS.build(perspective_head)
        self.grid_mask = MODELS.build(dict(type='GridMask', **(grid_mask or {}))) \
            if use_grid_mask else None

    def extract_feat(self, batch_inputs: dict) -> List[Tensor]:
        """Neck outputs of the current (last) frame, per level (B, N_cam, C, H_l, W_l)."""
        return self.extract_img_feat(batch_inputs['img'][:, -1])

    def loss(self, batch_inputs: dict, batch_data_samples: List) -> Dict[str, Tensor]:
        """The perspective losses of the current frame.

        Args:
            batch_inputs (dict): ``BEVDataPreprocessor`` output (``img`` (B, T, N_cam, 3, H, W),
                ``lidar2img``, ``img_shape``, ...).
            batch_data_samples (list[Det3DDataSample]): with ``gt_instances_3d``.
        """
        return self.perspective_head.loss(
            self.extract_feat(batch_inputs), batch_inputs['lidar2img'][:, -1],
            batch_inputs['img_shape'][:, -1], tuple(batch_inputs['img'].shape[-2:]),
            batch_data_samples)

    def predict(self, batch_inputs: dict, batch_data_samples: List) -> List:
        """The head's maps of each sample in ``pred_perspective`` (for inspection)."""
        feats = self.extract_feat(batch_inputs)[self.perspective_head.in_level]
        maps = self.perspective_head(feats.flatten(0, 1))
        num_cams = feats.shape[1]
        for b, ds in enumerate(batch_data_samples):
            ds.pred_perspective = {k: v[b * num_cams:(b + 1) * num_cams] for k, v in maps.items()}
        return batch_data_samples

    def _forward(self, batch_inputs: dict, batch_data_samples: List = None) -> Dict[str, Tensor]:
        feats = self.extract_feat(batch_inputs)[self.perspective_head.in_level]
        return self.perspective_head(feats.flatten(0, 1))
