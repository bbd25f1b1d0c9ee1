"""BEV map segmentation head on the BEV feature B_t (multi-label, one sigmoid per class)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor, nn

from .base_bev_head import BaseBEVHead


@MODELS.register_module()
class BEVSegHead(BaseBEVHead):
    """Per-cell, per-class masks (drivable area, crossings, ...) from B_t.

    B_t ``(bs, bev_h * bev_w, C)`` (flat index ``row * bev_w + col``, row = LiDAR y) is
    reshaped to ``(bs, C, bev_h, bev_w)``, decoded by ``num_convs`` 3x3 convs, then each of
    ``log2(upsample_factor)`` x2 bilinear upsamplings is followed by a 3x3 conv; a 1x1 conv
    gives one logit per class. Classes may overlap (a crossing is also drivable area), so
    each class has its own sigmoid.

    Args:
        embed_dims (int): C of B_t.
        bev_h (int), bev_w (int): BEV grid size of B_t.
        pc_range (sequence of 6 floats): BEV range (unused; part of :class:`BaseBEVHead`).
            ``embed_dims``, ``bev_h``, ``bev_w`` and ``pc_range`` come from the detector's BEV
            encoder.
        num_classes (int): number of mask channels (``gt_bev_seg`` channels).
        feat_channels (int): decoder width.
        num_convs (int): 3x3 convs at the BEV resolution.
        upsample_factor (int): output size = BEV size x this (a power of 2, >= 1); it must
            equal the size of ``gt_bev_seg`` (the label transform's grid).
        loss_seg (dict): per-cell loss on (N, num_classes) logits and {0, 1} targets, e.g.
            mmdet ``CrossEntropyLoss(use_sigmoid=True)`` or ``FocalLoss``.
        loss_dice (dict, optional): e.g. mmdet ``DiceLoss(use_sigmoid=True)``, per sample and
            class over the cells.
        class_weight (sequence of float, optional): per-class multiplier of both losses.
        threshold (float): probability above which a predicted cell is set.
        norm_cfg (dict): normalisation of the decoder convs.
        loss_prefix (str, optional): prefix of the loss keys, default ``'seg.'``.
    """

    pred_field = 'pred_bev_seg'
    default_loss_prefix = 'seg.'

    def __init__(self,
                 embed_dims: int,
                 bev_h: int,
                 bev_w: int,
                 pc_range: Sequence[float] = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0),
                 num_classes: int = 4,
                 feat_channels: int = 64,
                 num_convs: int = 1,
                 upsample_factor: int = 1,
                 loss_seg: ConfigType = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                             loss_weight=1.0),
                 loss_dice: OptConfigType = None,
                 class_weight: Optional[Sequence[float]] = None,
                 threshold: float = 0.5,
                 norm_cfg: ConfigType = dict(type='BN'),
                 loss_prefix: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(bev_h=bev_h, bev_w=bev_w, embed_dims=embed_dims, pc_range=pc_range,
                         loss_prefix=loss_prefix, init_cfg=init_cfg)
        if upsample_factor < 1 or upsample_factor & (upsample_factor - 1):
            raise ValueError(f'BEVSegHead: upsample_factor must be a power of 2 >= 1, got '
                             f'{upsample_factor}')
        if class_weight is not None and len(class_weight) != num_classes:
            raise ValueError(f'BEVSegHead: class_weight has {len(class_weight)} values, '
                             f'expected num_classes={num_classes}')
        self.num_classes = num_classes
        self.upsample_factor = upsample_factor
        self.threshold = threshold
        layers: List[nn.Module] = []
        channels = embed_dims
        for _ in range(num_convs):
            layers.append(ConvModule(channels, feat_channels, 3, padding=1, norm_cfg=norm_cfg))
            channels = feat_channels
        for _ in range(upsample_factor.bit_length() - 1):
            layers.append(nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False))
            layers.append(ConvModule(channels, feat_channels, 3, padding=1, norm_cfg=norm_cfg))
            channels = feat_channels
        self.decoder = nn.Sequential(*layers)
        self.cls_conv = nn.Conv2d(channels, num_classes, 1)
        self.loss_seg = MODELS.build(loss_seg)
        self.loss_dice = MODELS.build(loss_dice) if loss_dice is not None else None
        self.register_buffer(
            'class_weight',
            torch.tensor(class_weight, dtype=torch.float32) if class_weight is not None else None,
            persistent=False)

    @property
    def out_size(self) -> Tuple[int, int]:
        """(H, W) of the logits and of the labels: the BEV size x ``upsample_factor``."""
        return self.bev_h * self.upsample_factor, self.bev_w * self.upsample_factor

    def forward(self, bev_embed: Tensor) -> Tensor:
        """
        Args:
            bev_embed (Tensor): (bs, bev_h * bev_w, C).

        Returns:
            Tensor: logits (bs, num_classes, H, W) with (H, W) = :attr:`out_size`.
        """
        bs, num_cells, channels = bev_embed.shape
        if num_cells != self.bev_h * self.bev_w or channels != self.embed_dims:
            raise ValueError(f'BEVSegHead: expected bev_embed (bs, {self.bev_h * self.bev_w}, '
                             f'{self.embed_dims}), got {tuple(bev_embed.shape)}')
        x = bev_embed.transpose(1, 2).reshape(bs, channels, self.bev_h, self.bev_w)
        return self.cls_conv(self.decoder(x))

    def _targets(self, batch_data_samples: Sequence, device: torch.device) -> Tensor:
        targets = []
        expected = (self.num_classes, *self.out_size)
        for ds in batch_data_samples:
            token = ds.metainfo.get('token', '?')
            if 'gt_bev_seg' not in ds:
                raise KeyError(f'BEVSegHead: data sample {token} has no gt_bev_seg (put '
                               'LoadBEVSegLabels in the pipeline)')
            gt = torch.as_tensor(ds.gt_bev_seg)
            if tuple(gt.shape) != expected:
                raise ValueError(f'BEVSegHead: gt_bev_seg of sample {token} is '
                                 f'{tuple(gt.shape)}, expected {expected} (num_classes, '
                                 'bev_h * upsample_factor, bev_w * upsample_factor)')
            targets.append(gt)
        return torch.stack(targets).to(device=device, dtype=torch.float32)

    def loss(self, bev_embed: Tensor, batch_data_samples: Sequence) -> Dict[str, Tensor]:
        """
        Args:
            bev_embed (Tensor): (bs, bev_h * bev_w, C).
            batch_data_samples (list): samples with ``gt_bev_seg`` (num_classes, H, W).

        Returns:
            dict: ``loss_seg`` (and ``loss_dice``), scalars.
        """
        return self.loss_by_feat(self(bev_embed), self._targets(batch_data_samples,
                                                                bev_embed.device))

    def loss_by_feat(self, logits: Tensor, targets: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            logits (Tensor): (bs, K, H, W).
            targets (Tensor): (bs, K, H, W) float in {0, 1}.
        """
        bs, num_classes = logits.shape[:2]
        cell_logits = logits.permute(0, 2, 3, 1).reshape(-1, num_classes)  # (bs*H*W, K)
        cell_targets = targets.permute(0, 2, 3, 1).reshape(-1, num_classes)
        weight = None
        if self.class_weight is not None:
            weight = self.class_weight[None].expand_as(cell_logits)
        losses = dict(loss_seg=self.loss_seg(cell_logits, cell_targets, weight=weight))
        if self.loss_dice is not None:
            dice_weight = None if self.class_weight is None else self.class_weight.repeat(bs)
            losses['loss_dice'] = self.loss_dice(logits.flatten(0, 1), targets.flatten(0, 1),
                                                 weight=dice_weight)
        return losses

    def predict(self, bev_embed: Tensor, batch_data_samples: Sequence) -> List[Tensor]:
        """
        Args:
            bev_embed (Tensor): (bs, bev_h * bev_w, C).
            batch_data_samples (list): bs samples (unused beyond their number).

        Returns:
            list[Tensor]: per sample a (num_classes, H, W) bool mask, (H, W) = :attr:`out_size`.
        """
        masks = self.predict_by_feat(self(bev_embed))
        if len(masks) != len(batch_data_samples):
            raise ValueError(f'BEVSegHead: {len(masks)} BEV maps for {len(batch_data_samples)} '
                             'data samples')
        return masks

    def predict_by_feat(self, logits: Tensor) -> List[Tensor]:
        """(bs, K, H, W) logits -> bs masks (K, H, W) bool (sigmoid > threshold)."""
        return list((logits.sigmoid() > self.threshold).unbind(0))
