"""DeformableDETR2D (models/detectors) against mmdet's DeformableDETR (state dict, predictions,
losses, gradients), its two-stage variant and initialisation, and the deformable_detr configs."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import projects.deformable_detr  # noqa: F401  (registers the modules)
from projects.deformable_detr.models import (DeformableDecoder, DeformableDETR2D,
                                             DeformableEncoder, MSDeformableAttention)
from tests.shared_data import REPO_ROOT as REPO

register_all_modules(init_default_scope=False)
init_default_scope('mmdet')


def _small_detr_cfg(model_type: str, with_box_refine: bool, as_two_stage: bool,
                    EMBED: int = 64) -> dict:
    layer_attn = dict(embed_dims=EMBED, num_levels=4, batch_first=True)
    return dict(
        type=model_type,
        num_queries=12,
        num_feature_levels=4,
        with_box_refine=with_box_refine,
        as_two_stage=as_two_stage,
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                               pad_size_divisor=1),
        # a thin ResNet-18 (16 base channels) keeps the test fast
        backbone=dict(type='ResNet', depth=18, base_channels=16, num_stages=4,
                      out_indices=(1, 2, 3), frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=False),
                      norm_eval=True, style='pytorch'),
        neck=dict(type='ChannelMapper', in_channels=[32, 64, 128], kernel_size=1,
                  out_channels=EMBED, act_cfg=None, norm_cfg=dict(type='GN', num_groups=32),
                  num_outs=4),
        encoder=dict(num_layers=2, layer_cfg=dict(
            self_attn_cfg=layer_attn,
            ffn_cfg=dict(embed_dims=EMBED, feedforward_channels=96, ffn_drop=0.1))),
        decoder=dict(num_layers=2, return_intermediate=True, post_norm_cfg=None,
                     layer_cfg=dict(
                         self_attn_cfg=dict(embed_dims=EMBED, num_heads=4, dropout=0.1,
                                            batch_first=True),
                         cross_attn_cfg=layer_attn,
                         ffn_cfg=dict(embed_dims=EMBED, feedforward_channels=96,
                                      ffn_drop=0.1))),
        positional_encoding=dict(num_feats=EMBED // 2, normalize=True, offset=-0.5),
        bbox_head=dict(type='DeformableDETRHead', num_classes=3, embed_dims=EMBED,
                       sync_cls_avg_factor=True,
                       loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                                     alpha=0.25, loss_weight=2.0),
                       loss_bbox=dict(type='L1Loss', loss_weight=5.0),
                       loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
        train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
            dict(type='FocalLossCost', weight=2.0),
            dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
        test_cfg=dict(max_per_img=20))


def _batch():
    """Two images of different sizes (the smaller one padded), with ground truth."""
    g = torch.Generator().manual_seed(1)
    samples, inputs = [], []
    for h, w, boxes, labels in [(96, 128, [[10., 12., 60., 70.], [70., 20., 120., 90.]], [0, 2]),
                                (80, 72, [[5., 8., 40., 50.]], [1])]:
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0), img_id=len(samples)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes),
                                           labels=torch.tensor(labels))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('refine,two_stage', [(False, False), (True, False), (True, True)],
                         ids=['plain', 'refine', 'refine-twostage'])
def test_detector_matches_mmdet(refine, two_stage):
    """mmdet's DeformableDETR and ours: same state dict (strict), same predictions, losses
    and gradients, batch of two differently sized images."""
    torch.manual_seed(0)
    # mmdet's two-stage proposal embedding only fits embed_dims=256
    embed = 256 if two_stage else 64
    ref = MODELS.build(_small_detr_cfg('DeformableDETR', refine, two_stage, embed))
    ref.init_weights()
    # at init every sampling point sits exactly on a pixel centre, where bilinear sampling
    # has a kink and two correct kernels may pick different one-sided gradients; move
    # the points off the grid
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if 'sampling_offsets' in name or 'attention_weights' in name:
                p.add_(torch.randn_like(p) * 0.02)
    ours = MODELS.build(_small_detr_cfg('DeformableDETR2D', refine, two_stage, embed))
    assert isinstance(ours, DeformableDETR2D)
    assert isinstance(ours.encoder, DeformableEncoder)
    assert isinstance(ours.decoder, DeformableDecoder)
    ours.load_state_dict(ref.state_dict(), strict=True)

    data = ref.data_preprocessor(_batch(), training=False)
    assert data['inputs'].shape == (2, 3, 96, 128)

    ref.eval()
    ours.eval()
    with torch.no_grad():
        out_ref = ref(**copy.deepcopy(data), mode='tensor')
        out_ours = ours(**copy.deepcopy(data), mode='tensor')
        for a, b in zip(out_ref, out_ours):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        pred_ref = ref(**copy.deepcopy(data), mode='predict')
        pred_ours = ours(**copy.deepcopy(data), mode='predict')
    for a, b in zip(pred_ref, pred_ours):
        torch.testing.assert_close(b.pred_instances.scores, a.pred_instances.scores,
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(b.pred_instances.bboxes, a.pred_instances.bboxes,
                                   atol=1e-3, rtol=1e-4)
        assert torch.equal(b.pred_instances.labels, a.pred_instances.labels)

    # training mode with dropout on: the same seed gives the same dropout masks, because
    # the modules run in the same order
    ref.train()
    ours.train()
    losses = []
    for model in (ref, ours):
        model.zero_grad()
        torch.manual_seed(123)
        loss_dict = model(**copy.deepcopy(data), mode='loss')
        total, _ = model.parse_losses(loss_dict)
        total.backward()
        losses.append(loss_dict)
    assert losses[0].keys() == losses[1].keys()
    for key in losses[0]:
        torch.testing.assert_close(losses[1][key], losses[0][key], atol=1e-4, rtol=1e-4)
    grads_ref = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        if p.grad is None:
            assert grads_ref[name].grad is None, name
            continue
        torch.testing.assert_close(p.grad, grads_ref[name].grad, atol=1e-4, rtol=1e-3,
                                   msg=lambda m: f'{name}: {m}')


def test_two_stage_with_small_embed_dims():
    """Our proposal embedding follows embed_dims (mmdet's is fixed to 256 channels)."""
    model = MODELS.build(_small_detr_cfg('DeformableDETR2D', True, True, 64))
    model.init_weights()
    data = model.data_preprocessor(_batch(), training=True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    total.backward()
    assert torch.isfinite(total)
    assert 'enc_loss_cls' in losses


def test_detector_init_uses_paper_attention_init():
    torch.manual_seed(0)
    model = MODELS.build(_small_detr_cfg('DeformableDETR2D', True, False))
    model.init_weights()
    for module in model.modules():
        if isinstance(module, MSDeformableAttention):
            assert torch.count_nonzero(module.attention_weights.weight) == 0
            assert torch.count_nonzero(module.sampling_offsets.weight) == 0
            assert module.sampling_offsets.bias.abs().max() == module.num_points


CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'deformable_detr', '*.py')))


def test_configs_exist():
    names = [osp.basename(c) for c in CONFIGS]
    for variant in ('deformable-detr_r50', 'deformable-detr-refine_r50',
                    'deformable-detr-refine-twostage_r50', 'synthetic-coco'):
        assert any(variant in n for n in names), (variant, names)


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(c) for c in CONFIGS])
def test_config_loads_and_builds(path):
    try:
        cfg = Config.fromfile(path)
    except ModuleNotFoundError as e:
        if e.name != 'pkg_resources':
            raise
        pytest.fail(f"{path}: mmengine resolves 'mmdet::' bases with pkg_resources, which "
                    'setuptools>=81 removed; the venv needs setuptools>=77.0.3,<81')
    assert cfg.default_scope == 'mmdet'
    assert 'projects.deformable_detr' in cfg.custom_imports['imports']
    assert cfg.model.type == 'DeformableDETR2D'
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None  # no download in tests
    model = MODELS.build(model_cfg)
    assert isinstance(model.encoder, DeformableEncoder)
    assert isinstance(model.decoder, DeformableDecoder)
    data_root = cfg.train_dataloader.dataset.data_root
    assert data_root.rstrip('/') in ('data/coco', 'data/synthetic_coco'), data_root
