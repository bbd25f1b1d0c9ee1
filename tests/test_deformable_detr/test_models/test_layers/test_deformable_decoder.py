"""The decoder layer's self-attention (need_weights=False, fused SDPA) equals mmcv's
MultiheadAttention forward that it replaces, with and without a mask."""
import pytest
import torch

from projects.deformable_detr.models.layers import DeformableDecoderLayer


@pytest.mark.parametrize('with_mask', [False, True])
def test_self_attention_equals_mmcv_multihead_attention(with_mask):
    torch.manual_seed(0)
    layer = DeformableDecoderLayer(self_attn_cfg=dict(embed_dims=32, num_heads=4),
                                   cross_attn_cfg=dict(embed_dims=32, num_levels=1),
                                   ffn_cfg=dict(embed_dims=32, feedforward_channels=64)).eval()
    query, pos = torch.randn(2, 50, 32), torch.randn(2, 50, 32)
    mask = torch.rand(50, 50) > 0.7 if with_mask else None
    if mask is not None:
        mask.fill_diagonal_(False)  # every query sees at least itself
    with torch.no_grad():
        got = layer._self_attention(query, pos, mask)
        want = layer.self_attn(query=query, key=query, value=query, query_pos=pos,
                               key_pos=pos, attn_mask=mask)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
