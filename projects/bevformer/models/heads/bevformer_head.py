"""BEVFormer's 3D detection head: DETR-style set prediction on the BEV feature B_t.

Object queries run through :class:`BEVDetectionDecoder` over B_t; each decoder
layer's output goes through a classification and a regression branch. Regression outputs
are 10-d box codes (``geometry/box_coding.py``) whose centre is ``sigmoid(inverse_sigmoid(
reference) + delta)`` mapped to metres by ``pc_range``. Training matches queries to
ground truth one-to-one (Hungarian) and supervises every decoder layer; inference takes
the top-k (query, class) pairs without NMS, optionally followed by BEV NMS / Soft-NMS.

The queries are learned embeddings (the original), or with ``query_init`` taken from the peaks
of a heatmap predicted on B_t (:class:`BEVHeatmapQueries`, TransFusion's initialisation; its
dense heatmap loss is added as ``loss_heatmap``).
"""
import copy
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.models.utils import multi_apply
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import (ConfigType, InstanceList, OptConfigType, OptMultiConfig,
                         reduce_mean)
from mmengine.model import bias_init_with_prob, xavier_init
from mmengine.structures import InstanceData
from torch import Tensor, nn

from projects.bevformer.geometry.box_coding import CODE_SIZE, encode_bboxes_3d
from ..legacy import HeadLegacy
from .base_bev_head import BaseBEVHead
from .bev_nms import bev_nms
from .bev_proposals import BEVProposals


def _decoder_with_dims(decoder: ConfigType, embed_dims: int) -> dict:
    """The decoder config with the head's width filled into its layers where absent."""
    decoder = copy.deepcopy(dict(decoder))
    layer = dict(decoder.get('layer_cfg') or {})
    for key in ('self_attn_cfg', 'cross_attn_cfg', 'ffn_cfg'):
        layer[key] = dict(layer.get(key) or {})
        layer[key].setdefault('embed_dims', embed_dims)
    decoder['layer_cfg'] = layer
    return decoder


class DetTargets(NamedTuple):
    """Dense per-query targets of one decoder layer (see :meth:`BEVFormerHead.get_targets`)."""

    labels: Tensor  # (bs, num_query) long, num_classes = background
    label_weights: Tensor  # (bs, num_query)
    bbox_targets: Tensor  # (bs, num_query, 10) encoded, 0 where not finite / unmatched
    bbox_weights: Tensor  # (bs, num_query, 10) code weights on matched finite entries
    num_pos: int  # matched queries in the batch
    assigned_gt_inds: Tensor  # (bs, num_query) long, matched ground-truth row, -1 = none


@MODELS.register_module()
class BEVFormerHead(BaseBEVHead):
    """Deformable-DETR-style 3D detection head reading a BEV feature map.

    Writes ``pred_instances_3d``; its losses keep their plain names (``loss_cls``, ...).

    Args:
        num_classes (int): number of object classes. Defaults to 10 (nuScenes).
        embed_dims (int): channels C of the BEV feature, the queries and the decoder layers
            (filled into ``decoder.layer_cfg`` where absent).
        num_query (int): number of object queries. Defaults to 900.
        bev_h (int): BEV rows (along LiDAR y). bev_w (int): BEV columns (along LiDAR x).
        pc_range (Sequence[float]): (x_min, y_min, z_min, x_max, y_max, z_max) in metres;
            normalised reference points map to it. ``embed_dims``, ``bev_h``, ``bev_w`` and
            ``pc_range`` come from the detector's BEV encoder (:class:`BaseBEVHead`).
        code_size (int): regression code size; must be 10.
        code_weights (Sequence[float], optional): per-dimension L1 weights. Defaults
            to ``[1] * 8 + [0.2, 0.2]`` (velocity down-weighted).
        num_reg_fcs (int): hidden Linear layers in each branch. Defaults to 2.
        with_box_refine (bool): unshared branches per layer and iterative refinement of
            the reference points. Defaults to True.
        sync_cls_avg_factor (bool): average the classification normaliser over ranks.
        decoder (dict): config of the decoder (``BEVDetectionDecoder``).
        bbox_coder (dict): config of the box coder (``NMSFreeCoder``).
        loss_cls (dict): classification loss (sigmoid focal loss).
        loss_bbox (dict): regression loss (L1).
        train_cfg (dict, optional): ``assigner`` config (``HungarianAssigner3D``).
        test_cfg (dict, optional): ``nms`` config for BEV NMS / Soft-NMS after decoding
            (None or absent: NMS-free, as the original), see :func:`bev_nms`.
        legacy (dict, optional): the original BEVFormer's loss arithmetic (``dict()``: all
            of it; see ``models/legacy.py``). Default None.
        query_init (dict, optional): config of :class:`BEVHeatmapQueries` (its
            ``embed_dims``, ``num_classes``, ``num_proposals`` = ``num_query`` and the BEV
            geometry are filled in): queries from the peaks of a BEV heatmap instead of
            learned embeddings. Default None (learned queries, as the original).
        loss_prefix (str, optional): prefix of the loss keys (:class:`BaseBEVHead`).
        init_cfg (dict, optional): initialisation config.
    """

    pred_field = 'pred_instances_3d'
    default_loss_prefix = ''

    def __init__(self,
                 num_classes: int = 10,
                 embed_dims: int = 256,
                 num_query: int = 900,
                 bev_h: int = 200,
                 bev_w: int = 200,
                 pc_range: Sequence[float] = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0),
                 code_size: int = CODE_SIZE,
                 code_weights: Optional[Sequence[float]] = None,
                 num_reg_fcs: int = 2,
                 with_box_refine: bool = True,
                 sync_cls_avg_factor: bool = True,
                 decoder: ConfigType = dict(type='BEVDetectionDecoder'),
                 bbox_coder: ConfigType = dict(type='NMSFreeCoder', num_classes=10),
                 loss_cls: ConfigType = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                                             alpha=0.25, loss_weight=2.0),
                 loss_bbox: ConfigType = dict(type='L1Loss', loss_weight=0.25),
                 train_cfg: OptConfigType = dict(assigner=dict(
                     type='HungarianAssigner3D',
                     match_costs=[dict(type='FocalLossCost', weight=2.0),
                                  dict(type='BBox3DL1Cost', weight=0.25)])),
                 test_cfg: OptConfigType = None,
                 legacy: Optional[dict] = None,
                 query_init: OptConfigType = None,
                 loss_prefix: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(bev_h=bev_h, bev_w=bev_w, embed_dims=embed_dims, pc_range=pc_range,
                         loss_prefix=loss_prefix, init_cfg=init_cfg)
        self.legacy = HeadLegacy.build(legacy)
        if code_size != CODE_SIZE:
            raise ValueError(f'BEVFormerHead: code_size must be {CODE_SIZE} (see '
                             f'geometry/box_coding.py), got {code_size}')
        code_weights = [1.0] * 8 + [0.2, 0.2] if code_weights is None else list(code_weights)
        if len(code_weights) != code_size:
            raise ValueError(f'BEVFormerHead: code_weights must have {code_size} values, '
                             f'got {len(code_weights)}')
        if not dict(loss_cls).get('use_sigmoid', False):
            raise ValueError('BEVFormerHead: loss_cls must use sigmoid classification '
                             '(use_sigmoid=True); softmax with a background class is not '
                             'supported')
        self.num_classes = num_classes
        self.num_query = num_query
        self.code_size = code_size
        self.num_reg_fcs = num_reg_fcs
        self.with_box_refine = with_box_refine
        self.sync_cls_avg_factor = sync_cls_avg_factor
        self.register_buffer('code_weights', torch.tensor(code_weights, dtype=torch.float32),
                             persistent=False)

        self.train_cfg = train_cfg
        self.test_cfg = dict() if test_cfg is None else dict(test_cfg)
        self.assigner = None
        if train_cfg is not None:
            if 'assigner' not in train_cfg:
                raise KeyError('BEVFormerHead: train_cfg needs an "assigner" entry, got '
                               f'keys {sorted(train_cfg)}')
            self.assigner = TASK_UTILS.build(train_cfg['assigner'])
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        if getattr(self.bbox_coder, 'num_classes', num_classes) != num_classes:
            raise ValueError(f'BEVFormerHead: bbox_coder.num_classes '
                             f'({self.bbox_coder.num_classes}) != num_classes ({num_classes})')
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)

        self.decoder = MODELS.build(_decoder_with_dims(decoder, embed_dims))
        if self.decoder.embed_dims != embed_dims:
            raise ValueError(f'BEVFormerHead: decoder embed_dims {self.decoder.embed_dims} '
                             f'!= head embed_dims {embed_dims}')
        self.num_pred_layer = self.decoder.num_layers
        self.query_init = None
        if query_init is not None:
            query_init = dict(query_init)
            for key, value in (('embed_dims', embed_dims), ('num_classes', num_classes),
                               ('num_proposals', num_query), ('bev_h', self.bev_h),
                               ('bev_w', self.bev_w), ('pc_range', [float(v) for v in pc_range])):
                # compared as float32, as the head keeps pc_range
                if not torch.equal(torch.tensor(query_init.setdefault(key, value),
                                                dtype=torch.float32),
                                   torch.tensor(value, dtype=torch.float32)):
                    raise ValueError(f'BEVFormerHead: query_init.{key} = {query_init[key]} '
                                     f'differs from the head\'s {value}; leave it out')
            query_init.setdefault('type', 'BEVHeatmapQueries')
            self.query_init = MODELS.build(query_init)
        self._init_layers()

    def _init_layers(self) -> None:
        """Queries, reference-point projection and the per-layer branches."""
        if self.query_init is None:
            # each query row is (query_pos | query content)
            self.query_embedding = nn.Embedding(self.num_query, 2 * self.embed_dims)
            self.reference_points = nn.Linear(self.embed_dims, 3)

        cls_layers: List[nn.Module] = []
        for _ in range(self.num_reg_fcs):
            cls_layers += [nn.Linear(self.embed_dims, self.embed_dims),
                           nn.LayerNorm(self.embed_dims), nn.ReLU(inplace=True)]
        cls_layers.append(nn.Linear(self.embed_dims, self.num_classes))
        reg_layers: List[nn.Module] = []
        for _ in range(self.num_reg_fcs):
            reg_layers += [nn.Linear(self.embed_dims, self.embed_dims), nn.ReLU()]
        reg_layers.append(nn.Linear(self.embed_dims, self.code_size))
        fc_cls, fc_reg = nn.Sequential(*cls_layers), nn.Sequential(*reg_layers)

        if self.with_box_refine:
            self.cls_branches = nn.ModuleList(
                [copy.deepcopy(fc_cls) for _ in range(self.num_pred_layer)])
            self.reg_branches = nn.ModuleList(
                [copy.deepcopy(fc_reg) for _ in range(self.num_pred_layer)])
        else:
            # one shared branch applied to every layer
            self.cls_branches = nn.ModuleList([fc_cls] * self.num_pred_layer)
            self.reg_branches = nn.ModuleList([fc_reg] * self.num_pred_layer)

    def init_weights(self) -> None:
        """Xavier for the decoder and the reference-point projection, the deformable
        attention's own scheme, and a focal-loss prior (p = 0.01) on the class bias."""
        super().init_weights()
        for p in self.decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.decoder.modules():
            if m is not self.decoder and hasattr(m, 'sampling_offsets') and hasattr(
                    m, 'init_weights'):
                m.init_weights()
        if self.query_init is None:
            xavier_init(self.reference_points, distribution='uniform', bias=0.0)
        bias_init = bias_init_with_prob(0.01)
        for branch in self.cls_branches:
            nn.init.constant_(branch[-1].bias, bias_init)

    # ------------------------------------------------------------------ forward
    def forward(self, bev_embed: Tensor) -> Tuple[Tensor, Tensor]:
        """Decode the object queries over the BEV feature (see :meth:`forward_with_queries`)."""
        return self.forward_with_queries(bev_embed)[:2]

    def forward_with_queries(self, bev_embed: Tensor
                             ) -> Tuple[Tensor, Tensor, Optional[BEVProposals]]:
        """Decode the object queries over the BEV feature.

        Args:
            bev_embed (Tensor): (bs, bev_h * bev_w, embed_dims), layout as documented
                in ``bev_detection_decoder.py`` (row = y, column = x).

        Returns:
            tuple[Tensor, Tensor]:
            - all_cls_scores (Tensor): (num_layers, bs, num_query, num_classes) logits.
            - all_bbox_preds (Tensor): (num_layers, bs, num_query, 10) box codes with
              the centre (dims 0, 1, 4) in metres.
            - proposals (BEVProposals or None): the heatmap queries with ``query_init``.
        """
        expected = (self.bev_h * self.bev_w, self.embed_dims)
        if bev_embed.dim() != 3 or tuple(bev_embed.shape[1:]) != expected:
            raise ValueError(f'BEVFormerHead: bev_embed must be (bs, {expected[0]}, '
                             f'{expected[1]}) for bev_h={self.bev_h}, bev_w={self.bev_w}, '
                             f'got {tuple(bev_embed.shape)}')
        bs = bev_embed.shape[0]
        proposals = None
        if self.query_init is not None:
            proposals = self.query_init(bev_embed)
            query, query_pos = proposals.query, proposals.query_pos
            init_reference = proposals.reference_points
        else:
            query_pos, query = self.query_embedding.weight.split(self.embed_dims, dim=1)
            query_pos = query_pos[None].expand(bs, -1, -1)
            query = query[None].expand(bs, -1, -1)
            init_reference = self.reference_points(query_pos).sigmoid()  # (bs, nq, 3)

        spatial_shapes = torch.tensor([[self.bev_h, self.bev_w]], dtype=torch.long,
                                      device=bev_embed.device)
        level_start_index = spatial_shapes.new_zeros(1)
        states, references = self.decoder(
            query=query, query_pos=query_pos, value=bev_embed,
            reference_points=init_reference, spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            reg_branches=self.reg_branches if self.with_box_refine else None)

        # layer i predicts relative to the reference it was given (its input)
        inputs_refs = torch.cat([init_reference[None], references[:-1]], dim=0)
        all_cls, all_bbox = [], []
        for lid in range(self.num_pred_layer):
            all_cls.append(self.cls_branches[lid](states[lid]))
            all_bbox.append(self._decode_centres(self.reg_branches[lid](states[lid]),
                                                 inputs_refs[lid]))
        return torch.stack(all_cls), torch.stack(all_bbox), proposals

    def _decode_centres(self, delta: Tensor, reference: Tensor) -> Tensor:
        """Put the centre dims of a regression output into metres.

        Args:
            delta (Tensor): (bs, num_query, 10) raw branch output.
            reference (Tensor): (bs, num_query, 3) reference point in [0, 1].

        Returns:
            Tensor: (bs, num_query, 10) codes, dims (0, 1, 4) = (x, y, z) in metres.
        """
        centre = torch.cat([delta[..., 0:2], delta[..., 4:5]], dim=-1)
        centre = (centre + inverse_sigmoid(reference)).sigmoid()
        lo, hi = self.pc_range[:3], self.pc_range[3:]
        centre = centre * (hi - lo) + lo
        return torch.cat([centre[..., 0:2], delta[..., 2:4], centre[..., 2:3], delta[..., 5:]],
                         dim=-1)

    # ------------------------------------------------------------------ training
    def loss(self, bev_embed: Tensor, batch_data_samples: List) -> Dict[str, Tensor]:
        """Forward and compute the losses.

        Args:
            bev_embed (Tensor): (bs, bev_h * bev_w, embed_dims).
            batch_data_samples (list[Det3DDataSample]): ``gt_instances_3d`` with
                ``bboxes_3d`` (N, 9) LiDAR frame, z at the bottom, and ``labels_3d`` (N,).

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox`` (last layer) and
            ``d{i}.loss_cls``, ``d{i}.loss_bbox`` for the earlier layers; with
            ``query_init`` also ``loss_heatmap``.
        """
        self._check_batch(bev_embed, batch_data_samples)
        batch_gt = [s.gt_instances_3d for s in batch_data_samples]
        all_cls, all_bbox, proposals = self.forward_with_queries(bev_embed)
        losses = self.loss_by_feat(all_cls, all_bbox, batch_gt)
        if proposals is not None:
            losses.update(self.query_init.loss(proposals, [g.bboxes_3d for g in batch_gt],
                                               [g.labels_3d for g in batch_gt]))
        return losses

    def loss_by_feat(self, all_cls_scores: Tensor, all_bbox_preds: Tensor,
                     batch_gt_instances_3d: InstanceList) -> Dict[str, Tensor]:
        """Losses of every decoder layer.

        Args:
            all_cls_scores (Tensor): (num_layers, bs, num_query, num_classes).
            all_bbox_preds (Tensor): (num_layers, bs, num_query, 10).
            batch_gt_instances_3d (list[InstanceData]): ``bboxes_3d`` (N, 9),
                ``labels_3d`` (N,) per sample.

        Returns:
            dict[str, Tensor]: see :meth:`loss`.
        """
        if self.assigner is None:
            raise RuntimeError('BEVFormerHead: loss needs train_cfg with an assigner')
        batch_gt_codes, batch_gt_labels = [], []
        for i, gt in enumerate(batch_gt_instances_3d):
            bboxes, labels = gt.bboxes_3d, gt.labels_3d
            if bboxes.dim() != 2 or bboxes.shape[1] != 9 or labels.shape != bboxes.shape[:1]:
                raise ValueError(f'BEVFormerHead: sample {i}: gt_instances_3d.bboxes_3d must '
                                 f'be (N, 9) and labels_3d (N,), got {tuple(bboxes.shape)} and '
                                 f'{tuple(labels.shape)}')
            batch_gt_codes.append(encode_bboxes_3d(bboxes.to(all_bbox_preds)))
            batch_gt_labels.append(labels.to(all_bbox_preds.device).long())

        losses_cls, losses_bbox = multi_apply(self.loss_by_feat_single, all_cls_scores,
                                              all_bbox_preds, gt_codes=batch_gt_codes,
                                              gt_labels=batch_gt_labels)
        losses = dict(loss_cls=losses_cls[-1], loss_bbox=losses_bbox[-1])
        for i, (l_cls, l_bbox) in enumerate(zip(losses_cls[:-1], losses_bbox[:-1])):
            losses[f'd{i}.loss_cls'] = l_cls
            losses[f'd{i}.loss_bbox'] = l_bbox
        return losses

    def loss_by_feat_single(self, cls_scores: Tensor, bbox_preds: Tensor,
                            gt_codes: List[Tensor],
                            gt_labels: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Losses of one decoder layer.

        Args:
            cls_scores (Tensor): (bs, num_query, num_classes) logits.
            bbox_preds (Tensor): (bs, num_query, 10) codes.
            gt_codes (list[Tensor]): per sample (N_i, 10) encoded ground truth.
            gt_labels (list[Tensor]): per sample (N_i,) labels.

        Returns:
            tuple[Tensor, Tensor]: scalar focal loss and L1 loss.
        """
        labels, label_weights, bbox_targets, bbox_weights, num_pos, _ = self.get_targets(
            cls_scores, bbox_preds, gt_codes, gt_labels)

        # sigmoid focal loss has no background term, so only positives normalise it
        cls_avg_factor = cls_scores.new_tensor([float(num_pos)])
        if self.sync_cls_avg_factor:
            cls_avg_factor = reduce_mean(cls_avg_factor)
        cls_avg_factor = max(cls_avg_factor.item(), 1.0)
        loss_cls = self.loss_cls(cls_scores.reshape(-1, self.num_classes), labels.reshape(-1),
                                 label_weights.reshape(-1), avg_factor=cls_avg_factor)

        num_total_pos = reduce_mean(cls_scores.new_tensor([float(num_pos)]))
        num_total_pos = max(num_total_pos.item(), 1.0)
        loss_bbox = self.loss_bbox(bbox_preds.reshape(-1, self.code_size),
                                   bbox_targets.reshape(-1, self.code_size),
                                   bbox_weights.reshape(-1, self.code_size),
                                   avg_factor=num_total_pos)
        return loss_cls, loss_bbox

    def get_targets(self, cls_scores: Tensor, bbox_preds: Tensor, gt_codes: List[Tensor],
                    gt_labels: List[Tensor]) -> DetTargets:
        """Hungarian-match each sample and build dense per-query targets.

        Args:
            cls_scores (Tensor): (bs, num_query, num_classes).
            bbox_preds (Tensor): (bs, num_query, 10).
            gt_codes (list[Tensor]): per sample (N_i, 10).
            gt_labels (list[Tensor]): per sample (N_i,).

        Returns:
            DetTargets: labels (bs, num_query) with ``num_classes`` = background,
            label_weights (bs, num_query), bbox_targets (bs, num_query, 10),
            bbox_weights (bs, num_query, 10) (code weights on positives, 0 where the
            target is not finite, e.g. unknown velocity; in legacy mode 0 on the whole row),
            the number of positives and the assigned ground-truth row per query.
        """
        bs, nq = cls_scores.shape[:2]
        labels = cls_scores.new_full((bs, nq), self.num_classes, dtype=torch.long)
        label_weights = cls_scores.new_ones((bs, nq))
        bbox_targets = bbox_preds.new_zeros((bs, nq, self.code_size))
        bbox_weights = bbox_preds.new_zeros((bs, nq, self.code_size))
        assigned = cls_scores.new_full((bs, nq), -1, dtype=torch.long)
        num_pos = 0
        drop_rows = self.legacy is not None and self.legacy.drop_nonfinite_rows
        for i in range(bs):
            pred = InstanceData(scores=cls_scores[i].detach(), bboxes=bbox_preds[i].detach())
            gt = InstanceData(labels=gt_labels[i], bboxes=gt_codes[i])
            assign = self.assigner.assign(pred, gt)
            pos = torch.nonzero(assign.gt_inds > 0, as_tuple=False).squeeze(1)
            matched = assign.gt_inds[pos] - 1
            labels[i, pos] = gt_labels[i][matched]
            targets = gt_codes[i][matched]
            assigned[i, pos] = matched
            finite = torch.isfinite(targets)
            bbox_targets[i, pos] = torch.where(finite, targets, torch.zeros_like(targets))
            if drop_rows:
                finite = finite.all(-1, keepdim=True).expand_as(finite)
            bbox_weights[i, pos] = finite.to(bbox_weights.dtype) * self.code_weights
            num_pos += int(pos.numel())
        return DetTargets(labels, label_weights, bbox_targets, bbox_weights, num_pos, assigned)

    # ------------------------------------------------------------------ inference
    def predict(self, bev_embed: Tensor, batch_data_samples: List,
                rescale: bool = False) -> InstanceList:
        """Forward and decode.

        Args:
            bev_embed (Tensor): (bs, bev_h * bev_w, embed_dims).
            batch_data_samples (list[Det3DDataSample]): one per sample (only counted).
            rescale (bool): unused; boxes are always in metres in the LiDAR frame.

        Returns:
            list[InstanceData]: per sample ``bboxes_3d`` (M, 9) LiDAR frame, z at the
            bottom; ``scores_3d`` (M,); ``labels_3d`` (M,).
        """
        self._check_batch(bev_embed, batch_data_samples)
        return self.predict_by_feat(*self(bev_embed))

    def predict_by_feat(self, all_cls_scores: Tensor,
                        all_bbox_preds: Tensor) -> InstanceList:
        """Decode the last decoder layer, then apply the optional BEV NMS.

        Args:
            all_cls_scores (Tensor): (num_layers, bs, num_query, num_classes).
            all_bbox_preds (Tensor): (num_layers, bs, num_query, 10).

        Returns:
            list[InstanceData]: see :meth:`predict`.
        """
        nms_cfg = self.test_cfg.get('nms')
        results = []
        for cls_scores, bbox_preds in zip(all_cls_scores[-1], all_bbox_preds[-1]):
            res = self.bbox_coder.decode(cls_scores, bbox_preds)
            if nms_cfg is not None:
                res = bev_nms(res, nms_cfg)
            results.append(res)
        return results

    def _check_batch(self, bev_embed: Tensor, batch_data_samples: List) -> None:
        if len(batch_data_samples) != bev_embed.shape[0]:
            raise ValueError(f'BEVFormerHead: {len(batch_data_samples)} data samples for a '
                             f'bev_embed batch of {bev_embed.shape[0]}')
