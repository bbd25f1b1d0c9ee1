"""Perspective supervision of the image features (BEVFormer v2's idea, CenterNet-style targets).

Per camera, each 3D ground-truth box visible in the image becomes dense targets on one feature
level: a class heatmap with a Gaussian at the projected gravity centre (mmdet's CenterNet
helpers), the sub-cell offset of that centre, the 2D extent of the projected box, and the
log-depth of the centre. The head trains the backbone and neck to see objects in 3D before
the BEV encoder can; it is used in training only (no cost at inference), and alone in the
perspective pretraining stage (:class:`PerspectivePretrainer`).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import ConvModule
from mmdet.models.utils.gaussian_target import gaussian_radius, gen_gaussian_target
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule, bias_init_with_prob
from torch import Tensor, nn

from ...geometry.boxes import box_corners
from ...geometry.camera import project_points, visibility_mask


@MODELS.register_module()
class PerspectiveHead(BaseModule):
    """Dense per-camera 3D targets on one image-feature level, with their losses.

    Args:
        in_channels (int): channels of the feature level.
        num_classes (int): object classes (heatmap channels).
        feat_channels (int): width of the shared 3x3 conv.
        in_level (int): which level of the neck's outputs to supervise (0 = finest).
        min_depth (float): objects closer than this (metres) to a camera are ignored.
        min_overlap (float): CenterNet's Gaussian radius parameter.
        loss_heatmap (dict): e.g. mmdet ``GaussianFocalLoss``.
        loss_offset (dict), loss_extent (dict), loss_depth (dict): e.g. mmdet ``L1Loss``;
            the extent is in feature cells, the depth as ``log(depth in m)``.
        loss_prefix (str): prefix of the loss keys in the detector's loss dict.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int = 10,
                 feat_channels: int = 64,
                 in_level: int = 0,
                 min_depth: float = 0.5,
                 min_overlap: float = 0.3,
                 loss_heatmap: ConfigType = dict(type='GaussianFocalLoss', loss_weight=1.0),
                 loss_offset: ConfigType = dict(type='L1Loss', loss_weight=1.0),
                 loss_extent: ConfigType = dict(type='L1Loss', loss_weight=0.1),
                 loss_depth: ConfigType = dict(type='L1Loss', loss_weight=1.0),
                 loss_prefix: str = 'persp.',
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        self.num_classes = num_classes
        self.in_level = in_level
        self.min_depth = min_depth
        self.min_overlap = min_overlap
        self.loss_prefix = loss_prefix
        self.shared = ConvModule(in_channels, feat_channels, 3, padding=1,
                                 norm_cfg=dict(type='BN'))
        self.heatmap = nn.Conv2d(feat_channels, num_classes, 1)
        self.offset = nn.Conv2d(feat_channels, 2, 1)
        self.extent = nn.Conv2d(feat_channels, 2, 1)
        self.depth = nn.Conv2d(feat_channels, 1, 1)
        self.loss_heatmap = MODELS.build(loss_heatmap)
        self.loss_offset = MODELS.build(loss_offset)
        self.loss_extent = MODELS.build(loss_extent)
        self.loss_depth = MODELS.build(loss_depth)

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.constant_(self.heatmap.bias, bias_init_with_prob(0.1))

    def forward(self, feat: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            feat (Tensor): (B * N_cam, C, H, W) one feature level.

        Returns:
            dict: ``heatmap`` (B * N_cam, num_classes, H, W) logits, ``offset`` and
            ``extent`` (B * N_cam, 2, H, W), ``depth`` (B * N_cam, 1, H, W) log-depth.
        """
        x = self.shared(feat)
        return dict(heatmap=self.heatmap(x), offset=self.offset(x), extent=self.extent(x),
                    depth=self.depth(x))

    # ------------------------------------------------------------------ targets
    def get_targets(self, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor],
                    lidar2img: Tensor, img_shape: Tensor, feat_hw: Tuple[int, int],
                    pad_hw: Tuple[int, int]) -> Dict[str, Tensor]:
        """Dense targets of a batch.

        Args:
            gt_boxes (list[Tensor]): per sample (M, >=7) LiDAR boxes, z at the bottom.
            gt_labels (list[Tensor]): per sample (M,) labels.
            lidar2img (Tensor): (B, N_cam, 4, 4) LiDAR -> pixel of the fed images.
            img_shape (Tensor): (B, 2) valid (H, W) of the images before padding.
            feat_hw (tuple): (H, W) of the feature level.
            pad_hw (tuple): (H, W) of the padded images the features were computed on.

        Returns:
            dict: ``heatmap`` (B * N_cam, num_classes, H, W) in [0, 1]; for the P visible
            objects: ``index`` (P, 3) long (image b * N_cam + n, row, col), ``offset`` (P, 2),
            ``extent`` (P, 2) in feature cells (w, h), ``depth`` (P, 1) log-metres.
        """
        bs, num_cams = lidar2img.shape[:2]
        feat_h, feat_w = feat_hw
        stride = torch.tensor([pad_hw[1] / feat_w, pad_hw[0] / feat_h],
                              dtype=torch.float64, device=lidar2img.device)  # (x, y)
        heatmap = lidar2img.new_zeros(bs * num_cams, self.num_classes, feat_h, feat_w,
                                      dtype=torch.float32)
        index, offset, extent, depth = [], [], [], []
        for b in range(bs):
            boxes = gt_boxes[b].to(torch.float64)
            if len(boxes) == 0:
                continue
            mat = lidar2img[b].to(torch.float64)  # (N, 4, 4)
            centre = boxes[:, :3].clone()
            centre[:, 2] += boxes[:, 5] / 2  # gravity centre
            uv, d = project_points(centre, mat)  # (N, M, 2), (N, M)
            visible = visibility_mask(uv, d, img_shape[b].to(uv)) & (d > self.min_depth)
            corners = box_corners(boxes[:, :7]).reshape(-1, 3)  # (M * 8, 3)
            c_uv, c_d = project_points(corners, mat)
            c_uv = c_uv.view(num_cams, -1, 8, 2)
            in_front = (c_d.view(num_cams, -1, 8) > self.min_depth)[..., None]
            hw = img_shape[b].to(c_uv).flip(-1)  # (W, H)
            lo = torch.where(in_front, c_uv, c_uv.new_tensor(float('inf'))).amin(2)
            hi = torch.where(in_front, c_uv, c_uv.new_tensor(float('-inf'))).amax(2)
            size = (hi.clamp(max=hw) - lo.clamp(min=0)).clamp(min=1.0)  # (N, M, 2) pixels
            for n, m in torch.nonzero(visible, as_tuple=False).tolist():
                cell = uv[n, m] / stride
                col, row = int(cell[0]), int(cell[1])
                if not (0 <= row < feat_h and 0 <= col < feat_w):
                    continue
                ext = size[n, m] / stride  # (w, h) in cells
                radius = max(0, int(gaussian_radius((float(ext[1]), float(ext[0])),
                                                    self.min_overlap)))
                image = b * num_cams + n
                gen_gaussian_target(heatmap[image, int(gt_labels[b][m])], [col, row], radius)
                index.append([image, row, col])
                offset.append([float(cell[0]) - col, float(cell[1]) - row])
                extent.append(ext.tolist())
                depth.append([math.log(float(d[n, m]))])
        new = lidar2img.new_tensor
        return dict(heatmap=heatmap,
                    index=torch.tensor(index, dtype=torch.long,
                                       device=lidar2img.device).view(-1, 3),
                    offset=new(offset, dtype=torch.float32).view(-1, 2),
                    extent=new(extent, dtype=torch.float32).view(-1, 2),
                    depth=new(depth, dtype=torch.float32).view(-1, 1))

    # ------------------------------------------------------------------ losses
    def loss(self, mlvl_feats: List[Tensor], lidar2img: Tensor, img_shape: Tensor,
             pad_hw: Tuple[int, int], batch_data_samples: List) -> Dict[str, Tensor]:
        """Perspective losses of a batch (current frame).

        Args:
            mlvl_feats (list[Tensor]): per level (B, N_cam, C, H_l, W_l) neck outputs.
            lidar2img (Tensor): (B, N_cam, 4, 4). img_shape (Tensor): (B, 2) valid (H, W).
            pad_hw (tuple): (H, W) of the padded images.
            batch_data_samples (list[Det3DDataSample]): with ``gt_instances_3d``.

        Returns:
            dict: ``{prefix}loss_heatmap``, ``loss_offset``, ``loss_extent``, ``loss_depth``.
        """
        feat = mlvl_feats[self.in_level]
        bs, num_cams = feat.shape[:2]
        preds = self(feat.flatten(0, 1))
        gts = [ds.gt_instances_3d for ds in batch_data_samples]
        targets = self.get_targets([g.bboxes_3d for g in gts], [g.labels_3d for g in gts],
                                   lidar2img, img_shape, tuple(feat.shape[-2:]), pad_hw)
        return self.loss_by_feat(preds, targets)

    def loss_by_feat(self, preds: Dict[str, Tensor],
                     targets: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Losses from :meth:`forward`'s maps and :meth:`get_targets`' targets."""
        num_pos = max(len(targets['index']), 1)
        heat = preds['heatmap'].float().sigmoid().clamp(1e-4, 1 - 1e-4)
        losses = dict(loss_heatmap=self.loss_heatmap(heat, targets['heatmap'],
                                                     avg_factor=num_pos))
        i, r, c = targets['index'].unbind(-1) if len(targets['index']) else (None, ) * 3
        for key in ('offset', 'extent', 'depth'):
            pred = preds[key]
            loss_fn = getattr(self, f'loss_{key}')
            if i is None:  # no visible object: keep the graph, contribute 0
                losses[f'loss_{key}'] = pred.sum() * 0
                continue
            picked = pred[i, :, r, c].float()  # (P, k)
            losses[f'loss_{key}'] = loss_fn(picked, targets[key], avg_factor=num_pos)
        return {self.loss_prefix + k: v for k, v in losses.items()}
