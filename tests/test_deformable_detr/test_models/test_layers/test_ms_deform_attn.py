"""MSDeformableAttention (models/layers/ms_deform_attn.py) against mmcv's
MultiScaleDeformableAttention: the paper's initialisation, outputs, batch independence,
padding, bad shapes."""
import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention

from projects.deformable_detr.models import MSDeformableAttention

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
