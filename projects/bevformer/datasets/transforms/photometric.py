"""Per-camera photometric distortion and normalisation of ``results['img']`` (N_cam, H, W, 3)."""
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import PhotoMetricDistortion
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class MultiViewPhotoMetricDistortion(BaseTransform):
    """mmdet's :class:`PhotoMetricDistortion`, drawn independently for every camera.

    Required keys: ``img`` (N_cam, H, W, 3), BGR. Modified: ``img`` (float32).

    Args: those of ``mmdet.datasets.transforms.PhotoMetricDistortion``.
    """

    def __init__(self, brightness_delta: int = 32, contrast_range: Sequence[float] = (0.5, 1.5),
                 saturation_range: Sequence[float] = (0.5, 1.5), hue_delta: int = 18) -> None:
        self.distort = PhotoMetricDistortion(
            brightness_delta=brightness_delta, contrast_range=tuple(contrast_range),
            saturation_range=tuple(saturation_range), hue_delta=hue_delta)

    def transform(self, results: dict) -> dict:
        imgs = results['img'].astype(np.float32)
        results['img'] = np.stack([self.distort.transform({'img': im})['img'] for im in imgs])
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.distort!r})'
