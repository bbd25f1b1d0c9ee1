"""Tests of the BEVFormer BEV encoder layers (projects/bevformer/models/layers)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.ops import MultiScaleDeformableAttention
from mmengine.registry import MODELS as MMENGINE_MODELS

from mmdet.registry import MODELS
from projects.bevformer.geometry.bev import bev_grid_2d
from projects.bevformer.models.layers import (BEVFormerEncoder, BEVFormerEncoderLayer,
                                              MSDeformableAttention3D, SpatialCrossAttention,
                                              TemporalSelfAttention)

from tests.shared_data import REAL_SAMPLE_DIR

SAMPLE_DIR = Path(REAL_SAMPLE_DIR)
PC_RANGE = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
CAMS = ['CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT',
        'CAM_BACK_RIGHT']


def perturb(module: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> None:
    """Move every parameter off its structured init so the tests exercise all paths."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * scale)


def rigid(yaw: float, t=(0.0, 0.0, 0.0)) -> torch.Tensor:
    c, s = math.cos(yaw), math.sin(yaw)
    mat = torch.eye(4, dtype=torch.float64)
    mat[:2, :2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    mat[:3, 3] = torch.tensor(t, dtype=torch.float64)
    return mat


def test_registered_names_are_ours_and_unique():
    for cls in (TemporalSelfAttention, SpatialCrossAttention, MSDeformableAttention3D,
                BEVFormerEncoderLayer, BEVFormerEncoder):
        assert MODELS.get(cls.__name__) is cls
        assert cls.__name__ not in MMENGINE_MODELS.module_dict  # no clash with mmcv / mmengine
    tsa = MODELS.build(dict(type='TemporalSelfAttention', embed_dims=32, num_heads=4))
    assert isinstance(tsa, TemporalSelfAttention)


# ----------------------------------------------------------------------------- attentions
def _mmcv_msda(embed_dims, num_heads, num_levels, num_points):
    attn = MultiScaleDeformableAttention(embed_dims=embed_dims, num_heads=num_heads,
                                         num_levels=num_levels, num_points=num_points,
                                         dropout=0.0, batch_first=True)
    perturb(attn, seed=1)
    return attn.eval()


def test_ms_deformable_attention_3d_matches_mmcv_with_one_anchor():
    torch.manual_seed(0)
    embed_dims, heads, levels, points = 32, 4, 2, 4
    shapes = torch.tensor([[6, 8], [3, 4]])
    starts = torch.tensor([0, 48])
    ours = MSDeformableAttention3D(embed_dims, heads, levels, points)
    ref = _mmcv_msda(embed_dims, heads, levels, points)
    ours.sampling_offsets.load_state_dict(ref.sampling_offsets.state_dict())
    ours.attention_weights.load_state_dict(ref.attention_weights.state_dict())
    ours.value_proj.load_state_dict(ref.value_proj.state_dict())
    with torch.no_grad():  # our module has no output projection
        ref.output_proj.weight.copy_(torch.eye(embed_dims))
        ref.output_proj.bias.zero_()
    query = torch.randn(3, 7, embed_dims)
    value = torch.randn(3, 60, embed_dims)
    anchors = torch.rand(3, 7, 1, 2)
    got = ours(query, value, anchors, shapes, starts)
    expected = ref(query, value=value, reference_points=anchors.expand(3, 7, levels, 2),
                   spatial_shapes=shapes, level_start_index=starts) - query
    assert torch.allclose(got, expected, atol=1e-5)


def test_ms_deformable_attention_3d_splits_points_over_anchors():
    """Zero offsets and uniform weights: the output is the mean of the bilinear samples at the
    D anchors (num_points // D points each) over the levels."""
    torch.manual_seed(0)
    attn = MSDeformableAttention3D(embed_dims=8, num_heads=1, num_levels=2, num_points=4)
    with torch.no_grad():
        attn.sampling_offsets.bias.zero_()
        attn.value_proj.weight.copy_(torch.eye(8))
        attn.value_proj.bias.zero_()
    shapes = torch.tensor([[5, 6], [2, 3]])
    value = torch.randn(2, 36, 8)
    anchors = torch.rand(2, 3, 2, 2)  # D = 2
    got = attn(torch.randn(2, 3, 8), value, anchors, shapes, torch.tensor([0, 30]))
    expected = 0
    for lvl, (h, w), start in ((0, (5, 6), 0), (1, (2, 3), 30)):
        image = value[:, start:start + h * w].transpose(1, 2).reshape(2, 8, h, w)
        samples = F.grid_sample(image, anchors * 2 - 1, align_corners=False)  # (2, 8, 3, D)
        expected = expected + samples.mean(-1).transpose(1, 2) / 2
    assert torch.allclose(got, expected, atol=1e-5)
    with pytest.raises(ValueError, match='multiple of the number of pillar anchors'):
        attn(torch.randn(2, 3, 8), value, torch.rand(2, 3, 3, 2), shapes, torch.tensor([0, 30]))


def _tsa_from_two_mmcv(embed_dims, heads, points, member0, member1):
    """A TSA whose queue member q uses mmcv module q's offsets / weights on the query half of
    its input (zero on the previous-BEV half) and the shared value / output projections."""
    tsa = TemporalSelfAttention(embed_dims, heads, num_levels=1, num_points=points, dropout=0.0)
    c = embed_dims
    with torch.no_grad():
        off_w = tsa.sampling_offsets.weight.view(heads, 2, 1, points, 2, 2 * c)
        off_b = tsa.sampling_offsets.bias.view(heads, 2, 1, points, 2)
        att_w = tsa.attention_weights.weight.view(heads, 2, points, 2 * c)
        att_b = tsa.attention_weights.bias.view(heads, 2, points)
        for q, member in enumerate((member0, member1)):
            off_w[:, q, ..., :c] = 0
            off_w[:, q, ..., c:] = member.sampling_offsets.weight.view(heads, 1, points, 2, c)
            off_b[:, q] = member.sampling_offsets.bias.view(heads, 1, points, 2)
            att_w[:, q, :, :c] = 0
            att_w[:, q, :, c:] = member.attention_weights.weight.view(heads, points, c)
            att_b[:, q] = member.attention_weights.bias.view(heads, points)
        tsa.value_proj.load_state_dict(member0.value_proj.state_dict())
        tsa.output_proj.load_state_dict(member0.output_proj.state_dict())
        member1.value_proj.load_state_dict(member0.value_proj.state_dict())
        member1.output_proj.load_state_dict(member0.output_proj.state_dict())
    return tsa.eval()


def test_temporal_self_attention_matches_mean_of_mmcv_attentions():
    torch.manual_seed(0)
    embed_dims, heads, points, bev_h, bev_w = 32, 4, 4, 5, 6
    member0 = _mmcv_msda(embed_dims, heads, 1, points)
    member1 = _mmcv_msda(embed_dims, heads, 1, points)
    perturb(member1, seed=2)
    tsa = _tsa_from_two_mmcv(embed_dims, heads, points, member0, member1)
    shapes, starts = torch.tensor([[bev_h, bev_w]]), torch.tensor([0])
    query = torch.randn(2, bev_h * bev_w, embed_dims)
    pos = torch.randn(2, bev_h * bev_w, embed_dims)
    prev = torch.randn(2, bev_h * bev_w, embed_dims)
    ref = bev_grid_2d(bev_h, bev_w, 2)
    kwargs = dict(query_pos=pos, reference_points=ref, spatial_shapes=shapes,
                  level_start_index=starts)
    # Member 0 attends to the previous BEV, member 1 to the current queries; outputs averaged.
    expected = (member0(query, value=prev, **kwargs) + member1(query, value=query, **kwargs)) / 2
    got = tsa(query, ref, shapes, starts, query_pos=pos, prev_bev=prev)
    assert torch.allclose(got, expected, atol=1e-5)
    # Without a previous BEV the current queries stand in for it.
    expected = (member0(query, value=query, **kwargs) + member1(query, value=query, **kwargs)) / 2
    assert torch.allclose(tsa(query, ref, shapes, starts, query_pos=pos), expected, atol=1e-5)


def test_temporal_self_attention_batch_equals_singles():
    """bs=2 with one sample lacking a previous BEV == two bs=1 runs (no cross-sample mixing)."""
    torch.manual_seed(0)
    tsa = TemporalSelfAttention(32, 8, num_levels=1, num_points=4)
    perturb(tsa)
    tsa.eval()
    shapes, starts = torch.tensor([[4, 5]]), torch.tensor([0])
    query, pos, prev = torch.randn(3, 2, 20, 32).unbind(0)
    ref = bev_grid_2d(4, 5, 2)
    both = tsa(query, ref, shapes, starts, query_pos=pos, prev_bev=prev,
               prev_valid=torch.tensor([True, False]))
    first = tsa(query[:1], ref[:1], shapes, starts, query_pos=pos[:1], prev_bev=prev[:1])
    second = tsa(query[1:], ref[1:], shapes, starts, query_pos=pos[1:])
    assert torch.allclose(both[0], first[0], atol=1e-5)
    assert torch.allclose(both[1], second[0], atol=1e-5)
    # The previous-BEV half of the offset input matters.
    assert not torch.allclose(first, tsa(query[:1], ref[:1], shapes, starts, query_pos=pos[:1]),
                              atol=1e-3)
    with pytest.raises(ValueError, match='reference_points must be'):
        tsa(query, ref[:1], shapes, starts)


def _sca_inputs(bs=2, num_cams=3, num_query=12, depth=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes, starts = torch.tensor([[4, 6], [2, 3]]), torch.tensor([0, 24])
    value = torch.randn(bs, num_cams, 30, 16, generator=gen)
    query = torch.randn(bs, num_query, 16, generator=gen)
    pos = torch.randn(bs, num_query, 16, generator=gen)
    ref_cam = torch.rand(bs, num_cams, num_query, depth, 2, generator=gen)
    mask = torch.rand(bs, num_cams, num_query, depth, generator=gen) > 0.6
    mask[:, :, 0] = False  # query 0: no camera sees it, in both samples
    mask[0, 1] = False  # camera 1 sees nothing in sample 0
    mask[1, 2, 1:] = True  # camera 2 sees everything but query 0 in sample 1
    return query, value, ref_cam, mask, shapes, starts, pos


def _sca_reference(sca, query, value, ref_cam, mask, shapes, starts, pos):
    """Straightforward per (sample, camera) loop over the queries that camera sees."""
    outs = []
    for b in range(query.shape[0]):
        slots = torch.zeros_like(query[b])
        count = torch.zeros(query.shape[1])
        for cam in range(value.shape[1]):
            idx = mask[b, cam].any(-1).nonzero()[:, 0]
            if len(idx) == 0:
                continue
            out = sca.deformable_attention((query[b] + pos[b])[idx][None], value[b, cam][None],
                                           ref_cam[b, cam, idx][None], shapes, starts)[0]
            slots[idx] += out
            count[idx] += 1
        outs.append(query[b] + sca.output_proj(slots / count.clamp(min=1)[:, None]))
    return torch.stack(outs)


def test_spatial_cross_attention_matches_per_camera_loop():
    sca = SpatialCrossAttention(16, num_cams=3,
                                deformable_attention=dict(num_heads=4, num_levels=2,
                                                          num_points=4))
    perturb(sca)
    sca.eval()
    inputs = _sca_inputs()
    query, value, ref_cam, mask, shapes, starts, pos = inputs
    got = sca(query, value, ref_cam, mask, shapes, starts, query_pos=pos)
    assert torch.allclose(got, _sca_reference(sca, *inputs), atol=1e-5)
    # bs=2 == two bs=1 runs: each sample uses its own mask (not sample 0's).
    for b in range(2):
        single = sca(query[b:b + 1], value[b:b + 1], ref_cam[b:b + 1], mask[b:b + 1], shapes,
                     starts, query_pos=pos[b:b + 1])
        assert torch.allclose(got[b], single[0], atol=1e-5)


def test_spatial_cross_attention_ignores_unseen_queries():
    sca = SpatialCrossAttention(16, num_cams=3,
                                deformable_attention=dict(num_heads=4, num_levels=2,
                                                          num_points=4))
    perturb(sca)
    sca.eval()
    query, value, ref_cam, mask, shapes, starts, pos = _sca_inputs()
    out = sca(query, value, ref_cam, mask, shapes, starts, query_pos=pos)
    out_other = sca(query, value * 3 + 1, ref_cam, mask, shapes, starts, query_pos=pos)
    unseen = ~mask.any(-1).any(1)  # (bs, num_query)
    assert unseen[:, 0].all()
    # Unseen queries get no image information: residual + projected zero.
    expected = query[unseen] + sca.output_proj.bias
    assert torch.allclose(out[unseen], expected, atol=1e-6)
    assert torch.allclose(out_other[unseen], expected, atol=1e-6)
    assert not torch.allclose(out[~unseen], out_other[~unseen], atol=1e-3)
    # Nothing visible anywhere: still well defined.
    none = sca(query, value, ref_cam, torch.zeros_like(mask), shapes, starts, query_pos=pos)
    assert torch.allclose(none, query + sca.output_proj.bias, atol=1e-6)


# ----------------------------------------------------------------------------- encoder
def _real_lidar2img(scale: float) -> torch.Tensor:
    """(6, 4, 4) lidar2img of the nuScenes fixture for images resized by ``scale``."""
    sample = json.loads((SAMPLE_DIR / 'sample.json').read_text())
    mats = []
    for cam in CAMS:
        k4 = np.eye(4)
        k4[:3, :3] = np.array(sample['cameras'][cam]['cam2img'])
        k4[:2] *= scale  # resizing the image scales the first two rows
        mats.append(k4 @ np.array(sample['cameras'][cam]['lidar2cam']))
    return torch.from_numpy(np.stack(mats))


def tiny_encoder(**layer_overrides) -> BEVFormerEncoder:
    layer_cfg = dict(self_attn_cfg=dict(num_heads=8, num_points=4),
                     cross_attn_cfg=dict(deformable_attention=dict(num_heads=8, num_points=8)),
                     ffn_cfg=dict(feedforward_channels=64))
    for key, value in layer_overrides.items():
        if isinstance(value, dict):
            layer_cfg.setdefault(key, {}).update(value)
        else:
            layer_cfg[key] = value
    encoder = BEVFormerEncoder(bev_h=10, bev_w=10, pc_range=PC_RANGE, num_points_in_pillar=4,
                               num_cams=6, num_feature_levels=2, embed_dims=32, num_layers=2,
                               layer_cfg=layer_cfg)
    perturb(encoder)
    return encoder


def encoder_inputs(bs: int = 2, seed: int = 0) -> dict:
    """90x160 images (nuScenes x0.1) padded to 96x160; features at strides 8 and 16."""
    gen = torch.Generator().manual_seed(seed)
    base = _real_lidar2img(0.1)
    # Sample b sees the scene from a lidar rotated by 0.4 * b rad and shifted.
    lidar2img = torch.stack([base @ rigid(0.4 * b, (1.0 * b, -0.5 * b, 0.0)) for b in range(bs)])
    return dict(
        mlvl_feats=[torch.randn(bs, 6, 32, 12, 20, generator=gen),
                    torch.randn(bs, 6, 32, 6, 10, generator=gen)],
        lidar2img=lidar2img, img_shape=(90, 160), pad_shape=(96, 160),
        can_bus=torch.randn(bs, 18, generator=gen),
        prev_bev=torch.randn(bs, 100, 32, generator=gen),
        prev2cur=torch.stack([rigid(0.1 + 0.2 * b, (2.0, 1.0 - b, 0.0)) for b in range(bs)]),
        prev_valid=torch.tensor([True, False] * (bs // 2)))


def _select(inputs: dict, b: int) -> dict:
    out = {k: (v[b:b + 1] if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    out['mlvl_feats'] = [f[b:b + 1] for f in inputs['mlvl_feats']]
    return out


def test_encoder_batch_of_two_equals_two_singles():
    encoder = tiny_encoder().eval()
    inputs = encoder_inputs()
    with torch.no_grad():
        both = encoder(**inputs)
        first = encoder(**_select(inputs, 0))  # has a previous BEV
        second_inputs = _select(inputs, 1)  # has none
        second_inputs.update(prev_bev=None, prev2cur=None, prev_valid=None)
        second = encoder(**second_inputs)
    assert both.shape == (2, 100, 32)
    assert torch.allclose(both[0], first[0], atol=1e-5)
    assert torch.allclose(both[1], second[0], atol=1e-5)
    # The two samples' cameras see different cells: the masks really differ per sample.
    assert not torch.allclose(both[0], both[1], atol=1e-2)


def test_encoder_previous_bev_changes_the_output():
    encoder = tiny_encoder().eval()
    inputs = _select(encoder_inputs(), 0)
    with torch.no_grad():
        with_prev = encoder(**inputs)
        without = encoder(**{**inputs, 'prev_bev': None, 'prev2cur': None, 'prev_valid': None})
        invalid = encoder(**{**inputs, 'prev_valid': torch.tensor([False])})
        moved = encoder(**{**inputs, 'prev2cur': rigid(1.0, (5.0, 0.0, 0.0))[None]})
    assert not torch.allclose(with_prev, without, atol=1e-3)
    assert torch.allclose(invalid, without, atol=1e-6)
    assert not torch.allclose(with_prev, moved, atol=1e-3)  # the ego motion is used


def test_encoder_gradients_flow_everywhere():
    encoder = tiny_encoder().train()
    inputs = encoder_inputs()
    for feat in inputs['mlvl_feats']:
        feat.requires_grad_(True)
    inputs['prev_bev'].requires_grad_(True)
    encoder(**inputs).square().mean().backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    for feat in inputs['mlvl_feats']:
        assert feat.grad.abs().sum() > 0
    # Only sample 0 has a real previous BEV.
    assert inputs['prev_bev'].grad[0].abs().sum() > 0
    assert inputs['prev_bev'].grad[1].abs().sum() == 0


def test_encoder_checkpointing_gives_the_same_gradients():
    no_drop = dict(self_attn_cfg=dict(dropout=0.0), cross_attn_cfg=dict(dropout=0.0),
                   ffn_cfg=dict(ffn_drop=0.0))
    plain = tiny_encoder(**no_drop).train()
    ckpt = tiny_encoder(with_cp=True, **no_drop).train()
    ckpt.load_state_dict(plain.state_dict())
    assert ckpt.layers[0].with_cp
    inputs = encoder_inputs()
    out_plain, out_ckpt = plain(**inputs), ckpt(**inputs)
    assert torch.allclose(out_plain, out_ckpt, atol=1e-6)
    out_plain.sum().backward()
    out_ckpt.sum().backward()
    for (name, p1), (_, p2) in zip(plain.named_parameters(), ckpt.named_parameters()):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-5), name


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_encoder_runs_under_cpu_autocast(dtype):
    encoder = tiny_encoder().eval()
    inputs = encoder_inputs()
    with torch.no_grad():
        reference = encoder(**inputs)
        try:
            with torch.autocast('cpu', dtype=dtype):
                out = encoder(**inputs)
        except RuntimeError as err:  # an op without a CPU kernel for this dtype
            pytest.skip(f'CPU autocast {dtype} unsupported here: {err}')
    assert out.shape == reference.shape and torch.isfinite(out).all()
    # Low-precision matmuls, fp32 geometry: close to the fp32 result (LayerNorm'd, unit scale).
    assert (out.float() - reference).abs().mean() < 0.05


def test_encoder_gradients_under_bf16_autocast_follow_fp32():
    """The bf16 training path (``--amp`` on a CPU with native bf16): every parameter's gradient
    points where the fp32 one does and has its norm (measured: cosine >= 0.988, norm within 4.4 %;
    bf16 keeps 8 mantissa bits, the sampling offsets' gradients pass through bilinear weights)."""
    no_drop = dict(self_attn_cfg=dict(dropout=0.0), cross_attn_cfg=dict(dropout=0.0),
                   ffn_cfg=dict(ffn_drop=0.0))
    fp32 = tiny_encoder(**no_drop).train()
    bf16 = tiny_encoder(**no_drop).train()
    bf16.load_state_dict(fp32.state_dict())
    inputs = encoder_inputs()
    out32 = fp32(**inputs)
    weight = torch.randn(out32.shape, generator=torch.Generator().manual_seed(3))
    (out32 * weight).sum().backward()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = bf16(**inputs)
    (out.float() * weight).sum().backward()
    compared, changed = 0, 0
    for (name, p32), (_, p16) in zip(fp32.named_parameters(), bf16.named_parameters()):
        if p32.grad is None or p32.grad.norm() == 0:
            continue  # e.g. the TSA's value of a frame without history
        g32, g16 = p32.grad.flatten(), p16.grad.float().flatten()
        assert F.cosine_similarity(g32, g16, dim=0) > 0.98, name
        assert abs(g16.norm() / g32.norm() - 1) < 0.08, name
        compared += 1
        changed += not torch.equal(g32, g16)  # the last norm's bias does not see precision
    assert compared >= 20  # the attentions, FFNs and norms of both layers
    assert changed >= compared - 2, 'autocast did not reach the encoder'


def test_encoder_input_errors_name_the_argument():
    encoder = tiny_encoder().eval()
    inputs = encoder_inputs()
    with pytest.raises(ValueError, match='lidar2img must be'):
        encoder(**{**inputs, 'lidar2img': inputs['lidar2img'][:, :5]})
    with pytest.raises(ValueError, match='can_bus must be'):
        encoder(**{**inputs, 'can_bus': None})
    with pytest.raises(ValueError, match='prev2cur'):
        encoder(**{**inputs, 'prev2cur': None})
    with pytest.raises(ValueError, match=r'mlvl_feats\[1\]'):
        encoder(**{**inputs, 'mlvl_feats': [inputs['mlvl_feats'][0],
                                            inputs['mlvl_feats'][1][:, :, :16]]})
    with pytest.raises(ValueError, match='feature levels'):
        encoder(**{**inputs, 'mlvl_feats': inputs['mlvl_feats'][:1]})
