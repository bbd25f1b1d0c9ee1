"""Object queries initialised from a BEV heatmap (TransFusion's query initialisation on B_t).

A small conv head predicts a per-class centre heatmap on the BEV feature, supervised densely
with Gaussians at the ground-truth centres (CenterPoint's targets, mmdet's Gaussian helpers and
``GaussianFocalLoss``). The decoder's queries are then the ``num_proposals`` best local maxima
of that heatmap over all (class, cell) pairs: each starts at its cell's centre, with the BEV
feature of the cell plus an embedding of the proposed class as content and an MLP of its
(x, y) as positional embedding. Every BEV cell gets a training signal in every step, which is
what makes the detection head converge in far fewer iterations than learned queries whose
reference points must first wander onto the objects.

Layout of B_t as everywhere (``geometry/bev.py``): flat index ``row * bev_w + col``, rows
along LiDAR y, columns along x, cell centres at normalised ``((col + 0.5) / bev_w,
(row + 0.5) / bev_h)``.
"""
from typing import Dict, List, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.utils.gaussian_target import gaussian_radius, gen_gaussian_target
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule, bias_init_with_prob
from torch import Tensor, nn

from ...geometry.bev import bev_grid_2d, check_pc_range


class BEVProposals(NamedTuple):
    """The queries chosen from the heatmap of a batch (see :meth:`BEVHeatmapQueries.forward`)."""

    query: Tensor  # (bs, K, C) content: BEV feature of the cell + class embedding
    query_pos: Tensor  # (bs, K, C) positional embedding of the cell centre
    reference_points: Tensor  # (bs, K, 3) normalised (x, y, z), z = z_init
    labels: Tensor  # (bs, K) long, proposed class
    heatmap: Tensor  # (bs, num_classes, bev_h, bev_w) logits


@MODELS.register_module()
class BEVHeatmapQueries(BaseModule):
    """Heatmap on B_t and the object queries taken from its peaks.

    Args:
        embed_dims (int): channels C of B_t and of the queries.
        num_classes (int): heatmap channels (object classes).
        num_proposals (int): K queries taken per sample.
        bev_h (int), bev_w (int): BEV grid size (rows along y, columns along x).
        pc_range (sequence of 6 floats): the BEV range in metres (LiDAR frame).
        z_init (float): normalised height of the initial reference points (0.5 = the middle of
            ``pc_range``'s z; the regression branch refines it).
        nms_kernel_size (int): a proposal must be the maximum of its class in this window
            (odd; 1 = no suppression).
        min_radius (int): smallest Gaussian radius of a target, in cells.
        min_overlap (float): CenterNet's Gaussian radius parameter (box size -> radius).
        loss_heatmap (dict): e.g. mmdet ``GaussianFocalLoss``; normalised by the number of
            ground-truth centres in the batch.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_classes: int,
                 num_proposals: int,
                 bev_h: int,
                 bev_w: int,
                 pc_range: Sequence[float],
                 z_init: float = 0.5,
                 nms_kernel_size: int = 3,
                 min_radius: int = 1,
                 min_overlap: float = 0.1,
                 loss_heatmap: ConfigType = dict(type='GaussianFocalLoss', loss_weight=1.0),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if num_proposals < 1 or num_proposals > num_classes * bev_h * bev_w:
            raise ValueError(f'BEVHeatmapQueries: num_proposals must be in [1, num_classes * '
                             f'bev_h * bev_w = {num_classes * bev_h * bev_w}], got '
                             f'{num_proposals}')
        if nms_kernel_size < 1 or nms_kernel_size % 2 == 0:
            raise ValueError(f'BEVHeatmapQueries: nms_kernel_size must be odd and >= 1, got '
                             f'{nms_kernel_size}')
        if not 0.0 < z_init < 1.0:
            raise ValueError(f'BEVHeatmapQueries: z_init is normalised, must be in (0, 1), got '
                             f'{z_init}')
        self.embed_dims = embed_dims
        self.num_classes = num_classes
        self.num_proposals = num_proposals
        self.bev_h, self.bev_w = int(bev_h), int(bev_w)
        self.pc_range = check_pc_range(pc_range)
        self.z_init = z_init
        self.nms_kernel_size = nms_kernel_size
        self.min_radius = min_radius
        self.min_overlap = min_overlap
        self.heatmap_head = nn.Sequential(
            ConvModule(embed_dims, embed_dims, 3, padding=1, conv_cfg=dict(type='Conv2d'),
                       norm_cfg=dict(type='BN2d')),
            nn.Conv2d(embed_dims, num_classes, 1))
        self.class_embedding = nn.Linear(num_classes, embed_dims)
        self.pos_embedding = nn.Sequential(nn.Linear(2, embed_dims), nn.ReLU(inplace=True),
                                           nn.Linear(embed_dims, embed_dims))
        self.loss_heatmap = MODELS.build(loss_heatmap)

    def init_weights(self) -> None:
        super().init_weights()
        # focal-loss prior: every cell starts as background with p = 0.1 (CenterPoint's -2.19)
        nn.init.constant_(self.heatmap_head[-1].bias, bias_init_with_prob(0.1))

    # ------------------------------------------------------------------ forward
    def forward(self, bev_embed: Tensor) -> BEVProposals:
        """Predict the heatmap and take the top-K peaks as queries.

        Args:
            bev_embed (Tensor): (bs, bev_h * bev_w, C) B_t.

        Returns:
            BEVProposals: queries (bs, K, C), their positional embeddings (bs, K, C),
            reference points (bs, K, 3), proposed labels (bs, K) and the heatmap logits
            (bs, num_classes, bev_h, bev_w).
        """
        bs, num_cells, channels = bev_embed.shape
        if num_cells != self.bev_h * self.bev_w or channels != self.embed_dims:
            raise ValueError(f'BEVHeatmapQueries: bev_embed must be (bs, {self.bev_h * self.bev_w}'
                             f', {self.embed_dims}), got {tuple(bev_embed.shape)}')
        bev_map = bev_embed.transpose(1, 2).reshape(bs, channels, self.bev_h, self.bev_w)
        heatmap = self.heatmap_head(bev_map)  # (bs, num_classes, H, W)

        # the choice of cells is not differentiable; the gathered features are
        with torch.no_grad():
            score = heatmap.detach().sigmoid()
            if self.nms_kernel_size > 1:
                peak = F.max_pool2d(score, self.nms_kernel_size, stride=1,
                                    padding=self.nms_kernel_size // 2)
                score = score * (score == peak).to(score.dtype)
            top = score.flatten(1).topk(self.num_proposals, dim=1).indices  # (bs, K)
        labels = torch.div(top, num_cells, rounding_mode='floor')
        cells = top - labels * num_cells  # flat row * bev_w + col

        query = bev_embed.gather(1, cells[..., None].expand(-1, -1, channels))
        query = query + self.class_embedding(F.one_hot(labels, self.num_classes).to(query.dtype))
        xy = bev_grid_2d(self.bev_h, self.bev_w, 1, bev_embed.device,
                         bev_embed.dtype)[0, :, 0][cells]  # (bs, K, 2)
        reference = torch.cat([xy, xy.new_full(xy.shape[:-1] + (1, ), self.z_init)], dim=-1)
        return BEVProposals(query, self.pos_embedding(xy), reference, labels, heatmap)

    # ------------------------------------------------------------------ training
    def get_targets(self, gt_bboxes: List[Tensor], gt_labels: List[Tensor]) -> Tensor:
        """Gaussian centre heatmaps of a batch.

        Args:
            gt_bboxes (list[Tensor]): per sample (N_i, >=6) ``(x, y, z, l, w, h, ...)`` LiDAR
                boxes in metres.
            gt_labels (list[Tensor]): per sample (N_i,) labels in [0, num_classes).

        Returns:
            Tensor: (bs, num_classes, bev_h, bev_w) float32 CPU targets in [0, 1], 1 at the
            cell holding each centre; objects whose centre lies outside the BEV range have
            none.
        """
        x_min, y_min, _, x_max, y_max, _ = self.pc_range
        cell_w, cell_h = (x_max - x_min) / self.bev_w, (y_max - y_min) / self.bev_h
        # built on the CPU: a few Gaussians per sample, written one by one
        target = torch.zeros(len(gt_bboxes), self.num_classes, self.bev_h, self.bev_w)
        for b, (boxes, labels) in enumerate(zip(gt_bboxes, gt_labels)):
            if len(boxes) != len(labels):
                raise ValueError(f'BEVHeatmapQueries: sample {b}: {len(boxes)} boxes but '
                                 f'{len(labels)} labels')
            for box, label in zip(boxes.detach().cpu().tolist(), labels.cpu().tolist()):
                col, row = int((box[0] - x_min) // cell_w), int((box[1] - y_min) // cell_h)
                if not (0 <= row < self.bev_h and 0 <= col < self.bev_w):
                    continue
                # (rows, cols) spanned at yaw 0: w along y, l along x (the heading is ignored
                # here, as CenterPoint does)
                radius = gaussian_radius((box[4] / cell_h, box[3] / cell_w), self.min_overlap)
                radius = max(self.min_radius, int(radius))
                gen_gaussian_target(target[b, int(label)], [col, row], radius)
        return target

    def loss(self, proposals: BEVProposals, gt_bboxes: List[Tensor],
             gt_labels: List[Tensor]) -> Dict[str, Tensor]:
        """The heatmap loss of a batch.

        Args:
            proposals (BEVProposals): :meth:`forward`'s output.
            gt_bboxes (list[Tensor]), gt_labels (list[Tensor]): see :meth:`get_targets`.

        Returns:
            dict: ``loss_heatmap`` (scalar).
        """
        target = self.get_targets(gt_bboxes, gt_labels).to(proposals.heatmap)
        num_pos = max(float(target.eq(1).sum()), 1.0)
        heat = proposals.heatmap.float().sigmoid().clamp(1e-4, 1 - 1e-4)
        return dict(loss_heatmap=self.loss_heatmap(heat, target.float(), avg_factor=num_pos))
