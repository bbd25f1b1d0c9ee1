"""Batch the multi-view temporal items: images and per-frame geometry as (B, T, ...) tensors.

This is the one place where images are normalised and padded, and where the per-frame
geometry becomes tensors and is validated; the detector and its layers consume only the
tensors produced here (docs/data_format.md, "Model inputs").
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

#: Per-frame geometry keys of ``inputs``: trailing shape and dtype of one frame.
GEOMETRY_KEYS: Dict[str, tuple] = {
    'lidar2img': ((None, 4, 4), torch.float64),  # (N_cam, 4, 4) LiDAR -> pixel of the fed image
    'lidar2global': ((4, 4), torch.float64),  # LiDAR -> global pose
    'can_bus': ((18, ), torch.float64),  # absolute can_bus (docs/data_format.md)
    'img_shape': ((2, ), torch.long),  # valid (H, W) before padding
    'prev_exists': ((), torch.bool),  # the previous frame is in the same scene
}


@MODELS.register_module()
class BEVDataPreprocessor(BaseDataPreprocessor):
    """Stack a batch, normalise and pad the images, and turn the geometry into tensors.

    Each item (from ``NuScenesBEVDataset``) has ``inputs = {'img': (T, N_cam, 3, H, W)
    float32 (raw pixel values, channels as loaded), 'lidar2img': (T, N_cam, 4, 4),
    'lidar2global': (T, 4, 4), 'can_bus': (T, 18), 'img_shape': (T, 2), 'prev_exists': (T,)}``
    (arrays or tensors). Items may differ in image size: all are padded at the bottom / right
    to the largest, rounded up to ``pad_size_divisor`` (pixel coordinates do not move, so
    ``lidar2img`` stays valid). Normalisation happens before padding, so padded pixels are 0.

    Args:
        mean (sequence of 3 float, optional): per-channel mean, in the output channel order;
            None: no normalisation.
        std (sequence of 3 float, optional): per-channel std, with ``mean``.
        bgr_to_rgb (bool): flip the channel order (images load as BGR) before normalising.
        pad_size_divisor (int): pad H and W up to a multiple of it. Default 32.
        non_blocking (bool): passed to ``.to(device)``.
    """

    def __init__(self, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, bgr_to_rgb: bool = False,
                 pad_size_divisor: int = 32, non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if (mean is None) != (std is None):
            raise ValueError('BEVDataPreprocessor: give both mean and std, or neither')
        self._normalize = mean is not None
        if self._normalize:
            if len(mean) != 3 or len(std) != 3:
                raise ValueError(f'BEVDataPreprocessor: mean and std need 3 values, got '
                                 f'{mean}, {std}')
            if min(std) <= 0:
                raise ValueError(f'BEVDataPreprocessor: std must be > 0, got {std}')
            self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(3, 1, 1),
                                 False)
            self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(3, 1, 1),
                                 False)
        if pad_size_divisor < 1:
            raise ValueError(f'BEVDataPreprocessor: pad_size_divisor must be >= 1, got '
                             f'{pad_size_divisor}')
        self.bgr_to_rgb = bgr_to_rgb
        self.pad_size_divisor = pad_size_divisor

    def forward(self, data: dict, training: bool = False) -> dict:
        """Collate and move a batch.

        Args:
            data (dict): ``inputs``: a dict of lists of B per-item values (``pseudo_collate``)
                or of batched tensors (``default_collate``); ``data_samples``: list of B
                Det3DDataSample.
            training (bool): unused (no batch augmentation).

        Returns:
            dict: ``inputs = {'img': (B, T, N_cam, 3, H_pad, W_pad) float32, 'lidar2img':
            (B, T, N_cam, 4, 4) float64, 'lidar2global': (B, T, 4, 4) float64, 'can_bus':
            (B, T, 18) float64, 'img_shape': (B, T, 2) long, 'prev_exists': (B, T) bool}`` on
            the device, and ``data_samples`` (list) on the device.
        """
        inputs = data.get('inputs')
        if not isinstance(inputs, dict) or 'img' not in inputs:
            raise KeyError("BEVDataPreprocessor: data['inputs'] must be a dict with key 'img', "
                           f'got {type(inputs).__name__}'
                           + (f' with keys {sorted(inputs)}' if isinstance(inputs, dict) else ''))
        samples = data.get('data_samples')
        tokens = None if samples is None else [s.metainfo.get('token', '?') for s in samples]
        imgs = self._images(inputs['img'], tokens)
        num_frames, num_cams = imgs[0].shape[1:3]
        if samples is not None and len(samples) != len(imgs):
            raise ValueError(f'BEVDataPreprocessor: {len(imgs)} images but {len(samples)} '
                             f'data_samples')
        out = dict(img=self._pad_normalize(imgs))
        for key, (shape, dtype) in GEOMETRY_KEYS.items():
            if key not in inputs:
                raise KeyError(f'BEVDataPreprocessor: data["inputs"] has no {key!r} (the '
                               f'dataset puts the per-frame geometry there; docs/data_format.md)')
            out[key] = self._geometry(key, inputs[key], shape, dtype, len(imgs), num_frames,
                                      num_cams, tokens)
        out = self.cast_data(out)
        if samples is not None:
            samples = self.cast_data(list(samples))
        return dict(inputs=out, data_samples=samples)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _name(i: int, tokens: Optional[List[str]]) -> str:
        return f'item {i}' + (f' (sample {tokens[i]})' if tokens else '')

    def _images(self, imgs, tokens) -> List[Tensor]:
        """Per-item (1, T, N_cam, 3, H, W) tensors, checked to agree in T and N_cam."""
        if isinstance(imgs, Tensor):
            if imgs.dim() != 6:
                raise ValueError('BEVDataPreprocessor: a batched img must be (B, T, N_cam, 3, H, '
                                 f'W), got {tuple(imgs.shape)}')
            return [im[None] for im in imgs]
        imgs = list(imgs)
        if not imgs:
            raise ValueError('BEVDataPreprocessor: empty batch')
        out = []
        for i, img in enumerate(imgs):
            img = torch.as_tensor(img)
            if img.dim() != 5 or img.shape[2] != 3:
                raise ValueError(f'BEVDataPreprocessor: {self._name(i, tokens)} img must be '
                                 f'(T, N_cam, 3, H, W), got {tuple(img.shape)}')
            if out and img.shape[:2] != out[0].shape[1:3]:
                raise ValueError(f'BEVDataPreprocessor: {self._name(i, tokens)} has (T, N_cam) '
                                 f'{tuple(img.shape[:2])} but item 0 has '
                                 f'{tuple(out[0].shape[1:3])}; items of a batch need the same '
                                 f'queue length and cameras')
            out.append(img[None])
        return out

    def _pad_normalize(self, imgs: List[Tensor]) -> Tensor:
        """Normalise each item on the device, pad all to a common divisible size, stack."""
        d = self.pad_size_divisor
        height = -(-max(int(im.shape[-2]) for im in imgs) // d) * d
        width = -(-max(int(im.shape[-1]) for im in imgs) // d) * d
        batch = []
        for img in imgs:
            img = self.cast_data(img).float()
            if self.bgr_to_rgb:
                img = img.flip(3)
            if self._normalize:
                img = (img - self.mean) / self.std
            batch.append(F.pad(img, (0, width - img.shape[-1], 0, height - img.shape[-2])))
        return torch.cat(batch)

    def _geometry(self, key: str, values, shape: tuple, dtype: torch.dtype, bs: int,
                  num_frames: int, num_cams: int, tokens) -> Tensor:
        """Stack one geometry key to (B, T, *shape) and check its shape and finiteness."""
        want = tuple(num_cams if s is None else s for s in shape)
        if isinstance(values, Tensor) and values.dim() == 2 + len(want):
            items = list(values.unbind(0))
        else:
            items = list(values)
        if len(items) != bs:
            raise ValueError(f'BEVDataPreprocessor: {len(items)} values of {key!r} for a batch '
                             f'of {bs}')
        stacked = []
        for i, value in enumerate(items):
            value = torch.as_tensor(value).to(dtype)
            if tuple(value.shape) != (num_frames, *want):
                raise ValueError(f'BEVDataPreprocessor: {self._name(i, tokens)} {key} is '
                                 f'{tuple(value.shape)}, expected {(num_frames, *want)} '
                                 f'(T, ...)')
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ValueError(f'BEVDataPreprocessor: {self._name(i, tokens)} {key} has '
                                 f'non-finite values')
            stacked.append(value)
        return torch.stack(stacked)
