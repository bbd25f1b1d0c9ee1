"""A synthetic COCO-format detection dataset: simple shapes on textured backgrounds.

Small enough to train a detector on a CPU in minutes, and laid out like COCO so the
standard mmdet pipeline and ``CocoMetric`` run on it unchanged::

    <out_dir>/annotations/instances_train.json
    <out_dir>/annotations/instances_val.json
    <out_dir>/train/000000.png ...
    <out_dir>/val/000000.png ...

Every image is drawn from its own random stream (seed, split, index), so the output is
deterministic by seed and image ``i`` does not depend on how many images are asked for.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

SHAPE_CLASSES: Tuple[str, ...] = ('rectangle', 'ellipse', 'triangle')
SPLITS: Tuple[str, ...] = ('train', 'val')


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured background: smooth colour blobs, optional stripes and pixel noise.

    Returns:
        np.ndarray: (height, width, 3) uint8, BGR.
    """
    coarse = rng.uniform(60, 190, size=(rng.integers(2, 6), rng.integers(2, 6), 3))
    img = cv2.resize(coarse.astype(np.float32), (width, height),
                     interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        period = rng.uniform(6, 24)
        angle = rng.uniform(0, np.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = (xs * np.cos(angle) + ys * np.sin(angle)) * (2 * np.pi / period)
        img += (rng.uniform(8, 25) * np.sin(phase))[..., None]
    img += rng.normal(0, rng.uniform(3, 12), size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_polygon(rng: np.random.Generator, category: str, box: Tuple[int, int, int, int]
                   ) -> np.ndarray:
    """Outline of a shape inscribed in ``box`` = (x0, y0, w, h), as (N, 2) int32 (x, y)."""
    x0, y0, w, h = box
    if category == 'rectangle':
        return np.array([[x0, y0], [x0 + w - 1, y0], [x0 + w - 1, y0 + h - 1],
                         [x0, y0 + h - 1]], dtype=np.int32)
    if category == 'ellipse':
        centre = (x0 + (w - 1) // 2, y0 + (h - 1) // 2)
        return cv2.ellipse2Poly(centre, ((w - 1) // 2, (h - 1) // 2), 0, 0, 360, 8)
    # triangle: one vertex on the top edge, two on the bottom corners region, so it fills
    # the box in both directions
    apex = x0 + int(rng.integers(0, w))
    if rng.random() < 0.5:  # upside-down variant
        return np.array([[apex, y0 + h - 1], [x0, y0], [x0 + w - 1, y0]], dtype=np.int32)
    return np.array([[apex, y0], [x0, y0 + h - 1], [x0 + w - 1, y0 + h - 1]], dtype=np.int32)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def make_synthetic_image(rng: np.random.Generator,
                         size_range: Tuple[int, int] = (128, 256),
                         objects_range: Tuple[int, int] = (1, 5),
                         object_size_range: Tuple[float, float] = (0.12, 0.5),
                         max_iou: float = 0.1) -> Tuple[np.ndarray, List[dict]]:
    """Draw one image and its annotations.

    Args:
        rng (np.random.Generator): The image's random stream.
        size_range (tuple[int, int]): Inclusive range of image height and width (px).
        objects_range (tuple[int, int]): Inclusive range of the number of objects.
        object_size_range (tuple[float, float]): Object side length as a fraction of
            the shorter image side.
        max_iou (float): Largest IoU allowed between two objects' boxes, so boxes stay
            visible (few occlusions).

    Returns:
        tuple: the image (H, W, 3) uint8 BGR, and a list of dicts with ``category``
        (name), ``bbox`` [x, y, w, h] (tight around the drawn pixels), ``area`` (drawn
        pixels) and ``segmentation`` (one polygon, flat [x0, y0, x1, y1, ...]).
    """
    height = int(rng.integers(size_range[0], size_range[1] + 1))
    width = int(rng.integers(size_range[0], size_range[1] + 1))
    img = _texture(rng, height, width)
    short = min(height, width)
    boxes: List[Tuple[int, int, int, int]] = []
    annotations = []
    for _ in range(int(rng.integers(objects_range[0], objects_range[1] + 1))):
        for _attempt in range(20):  # rejection sampling for a non-overlapping box
            w = max(6, int(short * rng.uniform(*object_size_range)))
            h = max(6, int(w * rng.uniform(0.5, 2.0)))
            h = min(h, height - 1)
            x0 = int(rng.integers(0, width - w + 1))
            y0 = int(rng.integers(0, height - h + 1))
            if all(_iou((x0, y0, w, h), b) <= max_iou for b in boxes):
                break
        else:
            continue
        category = SHAPE_CLASSES[int(rng.integers(len(SHAPE_CLASSES)))]
        polygon = _shape_polygon(rng, category, (x0, y0, w, h))
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillPoly(mask, [polygon], 1)
        ys, xs = np.nonzero(mask)
        if len(xs) < 16:
            continue
        # a colour far from the background under the shape, so every object is visible
        under = img[mask > 0].mean(axis=0)
        for _attempt in range(10):
            colour = rng.integers(0, 256, size=3)
            if np.abs(colour - under).sum() > 180:
                break
        img[mask > 0] = colour.astype(np.uint8)
        boxes.append((x0, y0, w, h))
        bx0, by0 = int(xs.min()), int(ys.min())
        annotations.append(
            dict(category=category,
                 bbox=[bx0, by0, int(xs.max()) - bx0 + 1, int(ys.max()) - by0 + 1],
                 area=int(mask.sum()),
                 segmentation=[polygon.reshape(-1).astype(float).tolist()]))
    return img, annotations


def generate_synthetic_coco(out_dir: str,
                            num_train: int = 200,
                            num_val: int = 50,
                            seed: int = 0,
                            size_range: Tuple[int, int] = (128, 256),
                            objects_range: Tuple[int, int] = (1, 5)) -> Dict[str, str]:
    """Write a synthetic COCO-format dataset of shapes under ``out_dir``.

    Args:
        out_dir (str): Dataset root (created if missing).
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        seed (int): Random seed; the same seed writes byte-identical files.
        size_range (tuple[int, int]): Inclusive range of image height and width (px).
        objects_range (tuple[int, int]): Inclusive range of objects per image.

    Returns:
        dict[str, str]: split name -> path of its annotation json.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError(f'num_train and num_val must be >= 0, got {num_train}, {num_val}')
    if not 8 <= size_range[0] <= size_range[1]:
        raise ValueError(f'size_range must be (min, max) with 8 <= min <= max, got {size_range}')
    if not 0 <= objects_range[0] <= objects_range[1]:
        raise ValueError(f'objects_range must be (min, max) with 0 <= min <= max, '
                         f'got {objects_range}')
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(SHAPE_CLASSES)]
    cat_ids = {c['name']: c['id'] for c in categories}
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    ann_files = {}
    for split_id, (split, count) in enumerate(zip(SPLITS, (num_train, num_val))):
        os.makedirs(osp.join(out_dir, split), exist_ok=True)
        images, annotations = [], []
        for idx in range(count):
            rng = np.random.default_rng([seed, split_id, idx])
            img, anns = make_synthetic_image(rng, size_range, objects_range)
            file_name = f'{idx:06d}.png'
            path = osp.join(out_dir, split, file_name)
            if not cv2.imwrite(path, img):
                raise OSError(f'could not write image {path}')
            image_id = idx + 1
            images.append(dict(id=image_id, file_name=file_name, height=img.shape[0],
                               width=img.shape[1]))
            for ann in anns:
                annotations.append(
                    dict(id=len(annotations) + 1, image_id=image_id,
                         category_id=cat_ids[ann['category']], bbox=ann['bbox'],
                         area=ann['area'], segmentation=ann['segmentation'], iscrowd=0))
        coco = dict(info=dict(description=f'synthetic shapes, seed {seed}', version='1.0'),
                    licenses=[], images=images, annotations=annotations,
                    categories=categories)
        ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
        tmp = ann_file + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(coco, f)
        os.replace(tmp, ann_file)  # a reader never sees a half-written file
        ann_files[split] = ann_file
    return ann_files
