"""Multi-view resize / crop / pad; every one keeps ``lidar2img`` and ``cam2img`` exact.

The images are ``results['img']`` (N_cam, H, W, C); the same operation is applied to every
camera and the matrix update is the pure function from ``geometry/camera.py``.
"""
from typing import Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from ...geometry.camera import crop_lidar2img, scale_lidar2img


def _update_matrices(results: dict, fn, arg) -> None:
    for key in ('lidar2img', 'cam2img'):
        if key in results:
            results[key] = fn(np.asarray(results[key], dtype=np.float64), arg)


@TRANSFORMS.register_module()
class MultiViewResize(BaseTransform):
    """Resize every camera image by a factor or to a size.

    Required keys: ``img`` (N_cam, H, W, C). Modified: ``img``, ``img_shape``, ``pad_shape``,
    ``lidar2img`` (N_cam, 4, 4), ``cam2img`` (N_cam, 3, 3), ``scale_factor`` (total
    ``(sx, sy)`` since loading).

    Args:
        scale_factor (float, optional): output size ``round(W * s), round(H * s)``.
        size (pair of int, optional): output ``(W, H)``. Exactly one of the two.
        interpolation (str): ``mmcv.imresize`` interpolation.
    """

    def __init__(self, scale_factor: Optional[float] = None,
                 size: Optional[Sequence[int]] = None,
                 interpolation: str = 'bilinear') -> None:
        if (scale_factor is None) == (size is None):
            raise ValueError('MultiViewResize: give exactly one of scale_factor and size, got '
                             f'scale_factor={scale_factor}, size={size}')
        if size is not None and len(size) != 2:
            raise ValueError(f'MultiViewResize: size must be (W, H), got {size}')
        self.scale_factor = scale_factor
        self.size = tuple(int(v) for v in size) if size is not None else None
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[1:3]
        if self.size is not None:
            new_w, new_h = self.size
        else:
            new_w, new_h = int(round(w * self.scale_factor)), int(round(h * self.scale_factor))
        if new_w < 1 or new_h < 1:
            raise ValueError(f'MultiViewResize: output size {(new_w, new_h)} (W, H) is empty')
        if (new_w, new_h) == (w, h):
            return results  # nothing to do (e.g. scale_factor=1.0 in a base pipeline)
        # The exact pixel-area ratio (not the nominal factor) is what the resize applies.
        scale = (new_w / w, new_h / h)
        results['img'] = np.stack([
            mmcv.imresize(im, (new_w, new_h), interpolation=self.interpolation) for im in img
        ])
        _update_matrices(results, scale_lidar2img, scale)
        sx, sy = results.get('scale_factor', (1.0, 1.0))
        results['scale_factor'] = (sx * scale[0], sy * scale[1])
        results['img_shape'] = (new_h, new_w)
        results['pad_shape'] = (new_h, new_w)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale_factor={self.scale_factor}, '
                f'size={self.size}, interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class MultiViewCrop(BaseTransform):
    """Crop every camera image to ``crop_size`` at one position (the same for all cameras).

    Required keys: ``img`` (N_cam, H, W, C). Modified: ``img``, ``img_shape``, ``pad_shape``,
    ``lidar2img``, ``cam2img``; added ``crop_top_left`` (x0, y0).

    Args:
        crop_size (pair of int): output ``(H, W)``; must fit in the image.
        position (str | pair of int): ``'center'``, ``'bottom'`` (horizontally centred,
            keeps the lower rows: drops the sky), ``'random'`` (uniform over valid offsets,
            drawn per frame), or an explicit ``(x0, y0)`` top-left corner.
    """

    def __init__(self, crop_size: Sequence[int],
                 position: Union[str, Sequence[int]] = 'center') -> None:
        if len(crop_size) != 2 or min(crop_size) < 1:
            raise ValueError(f'MultiViewCrop: crop_size must be (H, W) > 0, got {crop_size}')
        if isinstance(position, str) and position not in ('center', 'bottom', 'random'):
            raise ValueError("MultiViewCrop: position must be 'center', 'bottom', 'random' or "
                             f'(x0, y0), got {position!r}')
        self.crop_size = tuple(int(v) for v in crop_size)
        self.position = position if isinstance(position, str) else tuple(position)

    def _top_left(self, h: int, w: int) -> Tuple[int, int]:
        ch, cw = self.crop_size
        if self.position == 'center':
            return (w - cw) // 2, (h - ch) // 2
        if self.position == 'bottom':
            return (w - cw) // 2, h - ch
        if self.position == 'random':
            return int(np.random.randint(0, w - cw + 1)), int(np.random.randint(0, h - ch + 1))
        return int(self.position[0]), int(self.position[1])

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[1:3]
        ch, cw = self.crop_size
        x0, y0 = self._top_left(h, w)
        if not (0 <= x0 and 0 <= y0 and x0 + cw <= w and y0 + ch <= h):
            raise ValueError(f'MultiViewCrop: crop {self.crop_size} (H, W) at (x0, y0)=({x0}, '
                             f'{y0}) does not fit in images of {(h, w)} (H, W)')
        results['img'] = np.ascontiguousarray(img[:, y0:y0 + ch, x0:x0 + cw])
        _update_matrices(results, crop_lidar2img, (x0, y0))
        results['crop_top_left'] = (x0, y0)
        results['img_shape'] = (ch, cw)
        results['pad_shape'] = (ch, cw)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(crop_size={self.crop_size}, '
                f'position={self.position!r})')
