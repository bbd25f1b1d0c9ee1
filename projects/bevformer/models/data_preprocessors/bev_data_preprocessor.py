"""Batch the multi-view temporal items: (B, T, N_cam, 3, H, W) float on the model's device."""
from typing import Optional, Sequence

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseDataPreprocessor


@MODELS.register_module()
class BEVDataPreprocessor(BaseDataPreprocessor):
    """Stack ``inputs['img']`` of a batch, move it to the device and optionally normalise.

    The dataset already resized / padded every item (docs/data_format.md), so items of a
    batch must agree in shape; a mismatch raises naming the item and both shapes.

    Args:
        mean (sequence of 3 float, optional): per-channel mean subtracted here (on device)
            when the pipeline did not normalise; None: no normalisation.
        std (sequence of 3 float, optional): per-channel std, with ``mean``.
        bgr_to_rgb (bool): flip the channel order before normalising.
        non_blocking (bool): passed to ``.to(device)``.
    """

    def __init__(self, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, bgr_to_rgb: bool = False,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if (mean is None) != (std is None):
            raise ValueError('BEVDataPreprocessor: give both mean and std, or neither')
        self._normalize = mean is not None
        if self._normalize:
            if len(mean) != 3 or len(std) != 3:
                raise ValueError(f'BEVDataPreprocessor: mean and std need 3 values, got '
                                 f'{mean}, {std}')
            self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(3, 1, 1),
                                 False)
            self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(3, 1, 1),
                                 False)
        self.bgr_to_rgb = bgr_to_rgb

    def forward(self, data: dict, training: bool = False) -> dict:
        """Collate and move a batch.

        Args:
            data (dict): ``inputs={'img': list of B Tensors (T, N_cam, 3, H, W)}`` (from
                ``pseudo_collate``) or one Tensor (B, T, N_cam, 3, H, W) (``default_collate``);
                ``data_samples``: list of B Det3DDataSample.
            training (bool): unused (no batch augmentation).

        Returns:
            dict: ``inputs={'img': Tensor (B, T, N_cam, 3, H, W) float32}`` on the device,
            ``data_samples`` (list) on the device.
        """
        inputs = data.get('inputs')
        if not isinstance(inputs, dict) or 'img' not in inputs:
            raise KeyError("BEVDataPreprocessor: data['inputs'] must be a dict with key 'img', "
                           f'got {type(inputs).__name__}'
                           + (f' with keys {sorted(inputs)}' if isinstance(inputs, dict) else ''))
        imgs = inputs['img']
        if isinstance(imgs, torch.Tensor):
            if imgs.dim() != 6:
                raise ValueError('BEVDataPreprocessor: a batched img must be (B, T, N_cam, 3, H, '
                                 f'W), got {tuple(imgs.shape)}')
            batch = imgs
        else:
            imgs = list(imgs)
            if not imgs:
                raise ValueError('BEVDataPreprocessor: empty batch')
            for i, img in enumerate(imgs):
                if not isinstance(img, torch.Tensor) or img.dim() != 5 or img.shape[2] != 3:
                    shape = tuple(img.shape) if hasattr(img, 'shape') else type(img).__name__
                    raise ValueError(f'BEVDataPreprocessor: item {i} img must be (T, N_cam, 3, '
                                     f'H, W), got {shape}')
                if img.shape != imgs[0].shape:
                    raise ValueError(f'BEVDataPreprocessor: item {i} img is {tuple(img.shape)} '
                                     f'but item 0 is {tuple(imgs[0].shape)}; all items of a '
                                     f'batch need the same queue length, cameras and size')
            batch = torch.stack(imgs)
        samples = data.get('data_samples')
        if samples is not None:
            samples = list(samples)
            if len(samples) != batch.shape[0]:
                raise ValueError(f'BEVDataPreprocessor: {batch.shape[0]} images but '
                                 f'{len(samples)} data_samples')
            self._check_meta(batch, samples)
        batch = self.cast_data(batch).float()
        if self.bgr_to_rgb:
            batch = batch.flip(3)
        if self._normalize:
            batch = (batch - self.mean) / self.std
        if samples is not None:
            samples = self.cast_data(samples)
        return dict(inputs=dict(img=batch), data_samples=samples)

    @staticmethod
    def _check_meta(batch: torch.Tensor, samples: list) -> None:
        """Per-sample geometry must fit the images: lidar2img (N_cam, 4, 4), history T - 1."""
        _, t, n_cam, _, h, w = batch.shape
        for i, sample in enumerate(samples):
            meta = sample.metainfo
            if 'lidar2img' in meta and tuple(meta['lidar2img'].shape) != (n_cam, 4, 4):
                raise ValueError(f'BEVDataPreprocessor: item {i} lidar2img is '
                                 f'{tuple(meta["lidar2img"].shape)}, expected ({n_cam}, 4, 4)')
            if 'history' in meta and len(meta['history']) != t - 1:
                raise ValueError(f'BEVDataPreprocessor: item {i} has {len(meta["history"])} '
                                 f'history frames but the images have T={t}')
            pad = meta.get('pad_shape')
            if pad is not None and tuple(pad) != (h, w):
                raise ValueError(f'BEVDataPreprocessor: item {i} pad_shape {tuple(pad)} does '
                                 f'not match the images ({h}, {w})')
