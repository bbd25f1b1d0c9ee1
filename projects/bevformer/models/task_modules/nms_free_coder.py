"""Turn per-query class logits and box codes into a ranked set of 3D boxes."""
from typing import Optional, Sequence

import torch
from mmdet.models.task_modules.coders import BaseBBoxCoder
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData
from torch import Tensor

from projects.bevformer.geometry.box_coding import (CODE_CENTER_DIMS, CODE_SIZE,
                                                    decode_bboxes_3d, encode_bboxes_3d)


@TASK_UTILS.register_module()
class NMSFreeCoder(BaseBBoxCoder):
    """Top-k decoding of set predictions without NMS (as in DETR3D / BEVFormer).

    Every (query, class) pair is a candidate scored by ``sigmoid(logit)``; the best
    ``max_num`` are kept, then optionally filtered by score and by centre range.

    Args:
        num_classes (int): number of classes.
        max_num (int): candidates kept per sample. Defaults to 300.
        score_threshold (float, optional): drop candidates scoring at or below it.
        post_center_range (Sequence[float], optional): (x_min, y_min, z_min, x_max,
            y_max, z_max) in metres; boxes whose gravity centre lies outside are dropped.
    """

    encode_size = CODE_SIZE

    def __init__(self,
                 num_classes: int,
                 max_num: int = 300,
                 score_threshold: Optional[float] = None,
                 post_center_range: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        if post_center_range is not None and len(post_center_range) != 6:
            raise ValueError('NMSFreeCoder: post_center_range must have 6 values, '
                             f'got {len(post_center_range)}')
        self.num_classes = num_classes
        self.max_num = max_num
        self.score_threshold = score_threshold
        self.post_center_range = (None if post_center_range is None else
                                  [float(v) for v in post_center_range])

    def encode(self, bboxes: Tensor) -> Tensor:
        """(N, 9) boxes -> (N, 10) codes; see :func:`encode_bboxes_3d`."""
        return encode_bboxes_3d(bboxes)

    def decode(self, cls_scores: Tensor, bbox_preds: Tensor) -> InstanceData:
        """Decode the predictions of one sample.

        Args:
            cls_scores (Tensor): (num_query, num_classes) logits.
            bbox_preds (Tensor): (num_query, 10) codes, centres in metres.

        Returns:
            InstanceData: ``bboxes_3d`` (M, 9) LiDAR frame, z at the bottom;
            ``scores_3d`` (M,) sorted descending; ``labels_3d`` (M,) long; ``query_index``
            (M,) long, the query each box came from.
        """
        if cls_scores.dim() != 2 or cls_scores.shape[1] != self.num_classes:
            raise ValueError(f'NMSFreeCoder: cls_scores must be (num_query, '
                             f'{self.num_classes}), got {tuple(cls_scores.shape)}')
        if bbox_preds.shape != (cls_scores.shape[0], CODE_SIZE):
            raise ValueError(f'NMSFreeCoder: bbox_preds must be ({cls_scores.shape[0]}, '
                             f'{CODE_SIZE}), got {tuple(bbox_preds.shape)}')
        k = min(self.max_num, cls_scores.numel())
        scores, flat_idx = cls_scores.sigmoid().flatten().topk(k)
        labels = flat_idx % self.num_classes
        query_index = torch.div(flat_idx, self.num_classes, rounding_mode='floor')
        codes = bbox_preds[query_index]

        keep = torch.ones_like(scores, dtype=torch.bool)
        if self.score_threshold is not None:
            keep &= scores > self.score_threshold
        if self.post_center_range is not None:
            rng = codes.new_tensor(self.post_center_range)
            centres = codes[:, list(CODE_CENTER_DIMS)]
            keep &= ((centres >= rng[:3]) & (centres <= rng[3:])).all(dim=1)

        results = InstanceData()
        results.bboxes_3d = decode_bboxes_3d(codes[keep])
        results.scores_3d = scores[keep]
        results.labels_3d = labels[keep]
        results.query_index = query_index[keep]
        return results
