"""Per-camera photometric distortion and normalisation of ``results['img']`` (N_cam, H, W, 3)."""
from typing import Sequence

import mmcv
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


@TRANSFORMS.register_module()
class MultiViewNormalize(BaseTransform):
    """``(img - mean) / std`` per camera with ``mmcv.imnormalize``.

    Required keys: ``img`` (N_cam, H, W, 3). Modified: ``img`` (float32); added
    ``img_norm_cfg``.

    Args:
        mean (sequence of 3 float): per-channel mean, in the output channel order.
        std (sequence of 3 float): per-channel std.
        to_rgb (bool): convert BGR (as loaded) to RGB first.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], to_rgb: bool = True) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'MultiViewNormalize: mean and std need 3 values, got {mean}, {std}')
        self.mean = np.array(mean, dtype=np.float32)
        self.std = np.array(std, dtype=np.float32)
        self.to_rgb = to_rgb

    def transform(self, results: dict) -> dict:
        results['img'] = np.stack([
            mmcv.imnormalize(im.astype(np.float32), self.mean, self.std, self.to_rgb)
            for im in results['img']
        ])
        results['img_norm_cfg'] = dict(mean=self.mean, std=self.std, to_rgb=self.to_rgb)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(mean={self.mean.tolist()}, std={self.std.tolist()}, '
                f'to_rgb={self.to_rgb})')
