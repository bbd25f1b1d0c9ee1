"""Load the N_cam images of a frame into one (N_cam, H, W, 3) array."""
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmengine import fileio


@TRANSFORMS.register_module()
class LoadMultiViewImages(BaseTransform):
    """Read ``results['img_paths']`` (one per camera, in camera order).

    Required keys: ``img_paths`` (list of N_cam paths), or ``img_arrays`` (list of N_cam
    (H, W, 3) uint8 BGR images already in memory, e.g. from the inferencer, which are used
    instead of reading files); optional ``cam_sizes`` (N_cam, 2)
    (H, W) from the info file, checked against the decoded images because ``lidar2img``
    is only valid for that size.

    Added keys: ``img`` (N_cam, H, W, 3) uint8 (float32 with ``to_float32``), BGR;
    ``img_shape``, ``ori_shape``, ``pad_shape`` (H, W); ``scale_factor`` (1.0, 1.0).

    Args:
        to_float32 (bool): convert to float32 (needed before photometric distortion).
        color_type (str): ``mmcv.imfrombytes`` flag.
        backend_args (dict, optional): mmengine file backend arguments.

    Raises:
        FileNotFoundError: an image is missing (the message names it).
        OSError: an image cannot be decoded (corrupt / not an image) or its file is
            truncated (a JPEG without its end-of-image marker, a PNG without IEND).
        ValueError: the cameras' images differ in size, or differ from ``cam_sizes``.
    """

    def __init__(self, to_float32: bool = False, color_type: str = 'color',
                 backend_args: Optional[dict] = None) -> None:
        self.to_float32 = to_float32
        self.color_type = color_type
        self.backend_args = backend_args

    def _read(self, path: str) -> np.ndarray:
        try:
            content = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise FileNotFoundError(f'LoadMultiViewImages: image not found: {path}') from err
        img = mmcv.imfrombytes(content, flag=self.color_type) if content else None
        if img is None:
            raise OSError(f'LoadMultiViewImages: cannot decode image (corrupt or not an '
                          f'image): {path}')
        if _truncated(content):
            # Decoders fill the missing rows (black / grey) and only warn: refuse instead.
            raise OSError(f'LoadMultiViewImages: image file is truncated (no end marker): '
                          f'{path}')
        if img.ndim == 2:  # grayscale file read with flag='unchanged'
            img = np.repeat(img[..., None], 3, axis=-1)
        return img

    def transform(self, results: dict) -> dict:
        arrays = results.get('img_arrays')
        if arrays is not None:
            paths = [f'<image {i} in memory>' for i in range(len(arrays))]
            imgs = [np.asarray(a) for a in arrays]
            for path, img in zip(paths, imgs):
                if img.ndim != 3 or img.shape[-1] != 3:
                    raise ValueError(f'LoadMultiViewImages: {path} must be (H, W, 3), got '
                                     f'{img.shape}')
        else:
            paths = results['img_paths']
            imgs = [self._read(p) for p in paths]
        shape = imgs[0].shape[:2]
        for path, img in zip(paths, imgs):
            if img.shape[:2] != shape:
                raise ValueError(f'LoadMultiViewImages: all cameras must have one size; '
                                 f'{path} is {img.shape[:2]} (H, W), {paths[0]} is {shape}')
        sizes = results.get('cam_sizes')
        if sizes is not None:
            for path, img, hw in zip(paths, imgs, np.asarray(sizes)):
                if tuple(img.shape[:2]) != tuple(int(v) for v in hw):
                    raise ValueError(f'LoadMultiViewImages: {path} is {img.shape[:2]} (H, W) '
                                     f'but the info file says {tuple(hw)}; its lidar2img '
                                     f'would not fit')
        img = np.stack(imgs)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = tuple(shape)
        results['ori_shape'] = tuple(shape)
        results['pad_shape'] = tuple(shape)
        results['scale_factor'] = (1.0, 1.0)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(to_float32={self.to_float32}, '
                f'color_type={self.color_type!r})')


def _truncated(content: bytes) -> bool:
    """Whether a JPEG / PNG file lacks its end marker (other formats are not checked).

    A JPEG's entropy-coded data escapes 0xFF bytes, so ``FF D9`` at the end (trailing zero
    padding allowed) is the end-of-image marker; a PNG ends with its IEND chunk.
    """
    if content[:2] == b'\xff\xd8':
        return not content.rstrip(b'\x00').endswith(b'\xff\xd9')
    if content[:8] == b'\x89PNG\r\n\x1a\n':
        return not content.rstrip(b'\x00').endswith(b'IEND\xaeB`\x82')
    return False
