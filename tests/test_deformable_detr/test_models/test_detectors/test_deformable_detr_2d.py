"""Deformable attention, encoder / decoder and Deformable DETR 2D against mmcv / mmdet."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmdet.models.layers.transformer.deformable_detr_layers import \
    DeformableDetrTransformerEncoder
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import projects.deformable_detr  # noqa: F401  (registers the modules)
from projects.deformable_detr.models import (DeformableDecoder, DeformableDETR2D,
                                             DeformableEncoder, MSDeformableAttention)
from projects.deformable_detr.models.layers import (deformable_sampling_locations,
                                                    encoder_reference_points,
                                                    refine_reference_points)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
register_all_modules(init_default_scope=False)
init_default_scope('mmdet')

SPATIAL_SHAPES = torch.tensor([[6, 8], [3, 4], [2, 2]])


def _level_start(shapes: torch.Tensor) -> torch.Tensor:
    areas = shapes[:, 0] * shapes[:, 1]
    return torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])


def _attn_inputs(bs=2, num_query=5, dims=32, ref_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    num_value = int((SPATIAL_SHAPES[:, 0] * SPATIAL_SHAPES[:, 1]).sum())
    query = torch.randn(bs, num_query, dims, generator=g)
    value = torch.randn(bs, num_value, dims, generator=g)
    query_pos = torch.randn(bs, num_query, dims, generator=g)
    ref = torch.rand(bs, num_query, len(SPATIAL_SHAPES), ref_dim, generator=g)
    if ref_dim == 4:
        ref[..., 2:] = ref[..., 2:] * 0.5 + 0.05
    mask = torch.zeros(bs, num_value, dtype=torch.bool)
    mask[-1, 40:] = True  # the last image is padded
    return dict(query=query, value=value, query_pos=query_pos, reference_points=ref,
                spatial_shapes=SPATIAL_SHAPES, level_start_index=_level_start(SPATIAL_SHAPES),
                key_padding_mask=mask)


# ---------------------------------------------------------------- attention module


def test_msda_init_matches_paper_ring():
    """Offsets start on mmcv's (= the paper's) ring, weights uniform, zero biases."""
    torch.manual_seed(0)
    ours = MSDeformableAttention(embed_dims=32, num_heads=4, num_levels=3, num_points=3)
    ref = MultiScaleDeformableAttention(embed_dims=32, num_heads=4, num_levels=3,
                                        num_points=3, batch_first=True)
    torch.testing.assert_close(ours.sampling_offsets.bias, ref.sampling_offsets.bias)
    assert torch.count_nonzero(ours.sampling_offsets.weight) == 0
    assert torch.count_nonzero(ours.attention_weights.weight) == 0
    assert torch.count_nonzero(ours.attention_weights.bias) == 0
    assert torch.count_nonzero(ours.value_proj.bias) == 0
    # point i of head 0 (direction +x) sits i + 1 cells out
    bias = ours.sampling_offsets.bias.view(4, 3, 3, 2)
    torch.testing.assert_close(bias[0, 1, :, 0], torch.tensor([1., 2., 3.]))


@pytest.mark.parametrize('ref_dim', [2, 4])
def test_msda_matches_mmcv(ref_dim):
    """Same weights and inputs give mmcv's MultiScaleDeformableAttention output."""
    torch.manual_seed(0)
    ours = MSDeformableAttention(embed_dims=32, num_heads=4, num_levels=3, num_points=2,
                                 dropout=0.0).eval()
    ref = MultiScaleDeformableAttention(embed_dims=32, num_heads=4, num_levels=3,
                                        num_points=2, dropout=0.0,
                                        batch_first=True).eval()
    # non-trivial weights, so offsets and attention weights depend on the query
    for p in ref.parameters():
        torch.nn.init.normal_(p, std=0.2)
    ours.load_state_dict(ref.state_dict(), strict=True)
    inputs = _attn_inputs(ref_dim=ref_dim)
    identity = torch.randn_like(inputs['query'])
    out = ours(identity=identity, **inputs)
    expected = ref(identity=identity, **inputs)
    assert out.shape == (2, 5, 32)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_msda_batch_equals_single_and_padding_is_ignored():
    torch.manual_seed(0)
    attn = MSDeformableAttention(embed_dims=32, num_heads=4, num_levels=3, num_points=2,
                                 dropout=0.0).eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.2)
    inputs = _attn_inputs()
    batched = attn(**inputs)
    for i in range(2):
        single = {k: (v[i:i + 1] if k not in ('spatial_shapes', 'level_start_index') else v)
                  for k, v in inputs.items()}
        torch.testing.assert_close(attn(**single), batched[i:i + 1], atol=1e-5, rtol=1e-5)
    # values under the padding mask do not change the output
    changed = dict(inputs, value=inputs['value'].clone())
    changed['value'][-1, 40:] = 1e3
    torch.testing.assert_close(attn(**changed), batched)


def test_msda_bad_shapes_raise():
    attn = MSDeformableAttention(embed_dims=32, num_heads=4, num_levels=3, num_points=2)
    inputs = _attn_inputs()
    with pytest.raises(ValueError, match='sum to'):
        attn(**dict(inputs, value=inputs['value'][:, :-1]))
    with pytest.raises(ValueError, match='reference_points'):
        attn(**dict(inputs, reference_points=inputs['reference_points'][..., :1]))
    with pytest.raises(ValueError, match='key_padding_mask'):
        attn(**dict(inputs, key_padding_mask=inputs['key_padding_mask'][:, :-1]))
    with pytest.raises(ValueError, match='batch-first'):
        MSDeformableAttention(embed_dims=32, num_heads=4, batch_first=False)


def test_sampling_locations_box_reference():
    """With a box reference, offset (num_points, 0) of the box half-width reaches its edge."""
    ref = torch.tensor([0.5, 0.5, 0.4, 0.2]).view(1, 1, 1, 4)
    offsets = torch.zeros(1, 1, 1, 1, 2, 2)
    offsets[..., 0, 0] = 2.0  # num_points = 2 -> the right edge
    offsets[..., 1, 1] = -2.0  # the top edge
    loc = deformable_sampling_locations(ref, offsets, torch.tensor([[10, 10]]))
    torch.testing.assert_close(loc[0, 0, 0, 0], torch.tensor([[0.7, 0.5], [0.5, 0.4]]))


def test_encoder_reference_points_match_mmdet():
    valid_ratios = torch.tensor([[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]],
                                 [[0.5, 0.75], [0.6, 0.8], [0.5, 1.0]]])
    ours = encoder_reference_points(SPATIAL_SHAPES, valid_ratios)
    ref = DeformableDetrTransformerEncoder.get_encoder_reference_points(
        SPATIAL_SHAPES, valid_ratios, 'cpu')
    assert ours.shape == (2, 48 + 12 + 4, 3, 2)
    torch.testing.assert_close(ours, ref)


def test_refine_reference_points():
    points = torch.tensor([[[0.25, 0.5]]])
    delta = torch.tensor([[[0.0, 0.0, 0.0, 0.0]]])
    torch.testing.assert_close(refine_reference_points(points, delta),
                               torch.tensor([[[0.25, 0.5, 0.5, 0.5]]]))
    boxes = torch.tensor([[[0.25, 0.5, 0.1, 0.2]]])
    torch.testing.assert_close(refine_reference_points(boxes, torch.zeros(1, 1, 4)), boxes)


# ---------------------------------------------------------------- detector parity

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


# ---------------------------------------------------------------- configs

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
