"""Image features of every camera: the backbone and neck shared by the detectors here."""
from typing import List

import torch
from torch import Tensor


class MultiViewFeaturesMixin:
    """``extract_img_feat`` for a detector with ``img_backbone``, ``img_neck`` (or None) and
    ``grid_mask`` (or None, applied to the images when the module is training).

    ``img_channels_last`` (the detectors' ``img_channels_last=True``): the images enter the
    backbone in NHWC memory order, so every convolution, BatchNorm and pooling after them runs
    in oneDNN's native CPU layout (no reorders). Same values within float rounding; the
    weights and checkpoints are untouched.
    """

    img_channels_last: bool = False

    def extract_img_feat(self, imgs: Tensor) -> List[Tensor]:
        """
        Args:
            imgs (Tensor): (B, N_cam, 3, H, W).

        Returns:
            list[Tensor]: per level (B, N_cam, C, H_l, W_l).
        """
        bs, num_cams = imgs.shape[:2]
        flat = imgs.flatten(0, 1)
        if self.grid_mask is not None:
            flat = self.grid_mask(flat)
        if self.img_channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        feats = self.img_backbone(flat)
        if self.img_neck is not None:
            feats = self.img_neck(feats)
        return [f.view(bs, num_cams, *f.shape[1:]) for f in feats]
