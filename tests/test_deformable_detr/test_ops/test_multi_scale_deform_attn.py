"""Our multi-scale deformable attention against mmcv's PyTorch reference.

mmcv's ``multi_scale_deformable_attn_pytorch`` (grid_sample based) is the ground
truth for output and for the gradients of value, locations and weights. Every test runs on
both CPU paths: the compiled kernel (``csrc/ms_deform_attn_cpu.cpp``) and the kernel-free
PyTorch op (``BEVFORMER_MSDA_CPU=pytorch``).
"""
from typing import List, Tuple

import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from projects.deformable_detr.ops import multi_scale_deformable_attn
from projects.deformable_detr.ops import cpu_kernel
from projects.deformable_detr.ops import multi_scale_deform_attn as msda_module


@pytest.fixture(autouse=True, params=['kernel', 'pytorch'])
def cpu_path(request, monkeypatch) -> str:
    """Each test once through the compiled CPU kernel and once through the PyTorch op."""
    if request.param == 'pytorch':
        monkeypatch.setenv(cpu_kernel.ENV_VAR, 'pytorch')
    else:
        monkeypatch.delenv(cpu_kernel.ENV_VAR, raising=False)
        # the kernel must build where the test suite runs (tools/setup.sh installs g++ / ninja)
        assert cpu_kernel.load_cpu_kernel() is not None, cpu_kernel._state['error']
    return request.param


def make_inputs(bs: int, num_query: int, shapes: List[Tuple[int, int]], num_heads: int = 2,
                head_dims: int = 4, num_points: int = 3, dtype=torch.float32):
    """Random inputs; locations in [-0.15, 1.15] so some corners fall outside the levels."""
    spatial_shapes = torch.tensor(shapes, dtype=torch.long)
    sizes = spatial_shapes[:, 0] * spatial_shapes[:, 1]
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    num_levels = len(shapes)
    value = torch.randn(bs, int(sizes.sum()), num_heads, head_dims, dtype=dtype)
    loc = torch.rand(bs, num_query, num_heads, num_levels, num_points, 2, dtype=dtype) * 1.3 - 0.15
    weights = torch.rand(bs, num_query, num_heads, num_levels, num_points, dtype=dtype)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    return value, spatial_shapes, level_start_index, loc, weights


def run_both(value, spatial_shapes, level_start_index, loc, weights):
    """Output and (value, loc, weight) gradients of ours and of mmcv's reference."""
    results = []
    for fn in ('ours', 'mmcv'):
        v, l, w = (t.detach().clone().requires_grad_() for t in (value, loc, weights))
        if fn == 'ours':
            out = multi_scale_deformable_attn(v, spatial_shapes, level_start_index, l, w)
        else:
            out = multi_scale_deformable_attn_pytorch(v, spatial_shapes, l, w)
        grad_out = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        out.backward(grad_out)
        results.append((out.detach(), v.grad, l.grad, w.grad))
    return results


def assert_rel_close(actual, expected, rtol=1e-5, name=''):
    """Elementwise |a - e| <= rtol * max|e| (a relative tolerance on the tensor's scale)."""
    scale = expected.abs().max().clamp(min=1e-12)
    err = (actual - expected).abs().max()
    assert err <= rtol * scale, f'{name}: max abs err {err:.3g} > {rtol} * {scale:.3g}'


@pytest.mark.parametrize('bs,num_query,shapes,num_heads,num_points', [
    (1, 7, [(5, 6)], 2, 4),                         # one level
    (2, 11, [(6, 9), (3, 5), (2, 3), (1, 1)], 3, 2),  # four levels incl. a 1x1 level
    (3, 5, [(4, 4), (2, 7)], 1, 1),                 # one head, one point
])
def test_matches_mmcv_reference_fp32(bs, num_query, shapes, num_heads, num_points):
    inputs = make_inputs(bs, num_query, shapes, num_heads=num_heads, num_points=num_points)
    ours, ref = run_both(*inputs)
    assert ours[0].shape == (bs, num_query, num_heads * 4)
    for a, e, name in zip(ours, ref, ('output', 'grad value', 'grad loc', 'grad weights')):
        assert_rel_close(a, e, name=name)


@pytest.mark.parametrize('head_dims', [16, 32, 64])
def test_unrolled_head_dims_match_mmcv_reference(head_dims):
    """The kernel unrolls its channel loops for 16 / 32 / 64 (BEVFormer's 256 / 8 heads = 32):
    the sizes real models run, tested here against the reference like the runtime-length ones."""
    inputs = make_inputs(2, 9, [(5, 6), (3, 4)], num_heads=2, head_dims=head_dims, num_points=4)
    ours, ref = run_both(*inputs)
    for a, e, name in zip(ours, ref, ('output', 'grad value', 'grad loc', 'grad weights')):
        assert_rel_close(a, e, name=name)


def test_wrong_level_start_index_is_named():
    """A start that is not the cumulative H*W would read outside the value in the kernel."""
    value, shapes, starts, loc, weights = make_inputs(1, 4, [(3, 3), (2, 2)])
    with pytest.raises(ValueError, match=r'level_start_index \[0, 10\] is not the start.*'
                                         r'expected \[0, 9\]'):
        multi_scale_deformable_attn(value, shapes, torch.tensor([0, 10]), loc, weights)


def test_locations_far_outside_and_on_the_border():
    value, shapes, starts, loc, weights = make_inputs(2, 6, [(4, 5), (2, 3)], num_points=4)
    # far outside, exactly on the image border, half a pixel outside, exact pixel centres
    loc[:, 0] = -3.0
    loc[:, 1] = 5.0
    loc[:, 2, ..., 0] = 0.0
    loc[:, 2, ..., 1] = 1.0
    loc[:, 3] = -0.1
    loc[:, 4, :, 0, :, 0] = 2.5 / 5  # x pixel coordinate 2.0 on level 0
    ours, ref = run_both(value, shapes, starts, loc, weights)
    assert ours[0][:, :2].abs().max() == 0  # nothing to read far outside
    for a, e, name in zip(ours, ref, ('output', 'grad value', 'grad loc', 'grad weights')):
        assert_rel_close(a, e, name=name)


def test_gradcheck_float64():
    value, shapes, starts, loc, weights = make_inputs(2, 3, [(3, 4), (2, 2)], num_heads=2,
                                                      head_dims=3, num_points=2,
                                                      dtype=torch.float64)
    inputs = (value.requires_grad_(), shapes, starts, loc.requires_grad_(),
              weights.requires_grad_())
    assert torch.autograd.gradcheck(multi_scale_deformable_attn, inputs, eps=1e-6, atol=1e-5)


def test_non_contiguous_inputs():
    value, shapes, starts, loc, weights = make_inputs(2, 9, [(5, 4), (3, 2)], num_heads=3)
    # same values, strided layouts
    value_nc = value.permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)
    loc_nc = torch.stack([loc[..., 0], loc[..., 1]], dim=0).movedim(0, -1)
    weights_nc = weights.transpose(0, 1).contiguous().transpose(0, 1)
    assert not (value_nc.is_contiguous() or loc_nc.is_contiguous() or weights_nc.is_contiguous())
    ours, _ = run_both(value_nc, shapes, starts, loc_nc, weights_nc)
    _, ref = run_both(value, shapes, starts, loc, weights)
    for a, e, name in zip(ours, ref, ('output', 'grad value', 'grad loc', 'grad weights')):
        assert_rel_close(a, e, name=name)


def test_batch_of_two_equals_two_single_runs():
    value, shapes, starts, loc, weights = make_inputs(2, 8, [(4, 6), (2, 3)])
    both = multi_scale_deformable_attn(value, shapes, starts, loc, weights)
    for b in range(2):
        single = multi_scale_deformable_attn(value[b:b + 1], shapes, starts, loc[b:b + 1],
                                             weights[b:b + 1])
        torch.testing.assert_close(both[b:b + 1], single, rtol=0, atol=1e-6)


@pytest.mark.parametrize('max_entries', [300, 1000])
def test_blocked_processing_matches(monkeypatch, max_entries, cpu_path):
    """Small block budgets force head-split (300) and batch-split (1000) blocks (the
    PyTorch op's blocks; the kernel has none)."""
    inputs = make_inputs(3, 10, [(5, 6), (2, 3)], num_heads=4, num_points=3)
    monkeypatch.setattr(msda_module, '_MAX_BLOCK_ENTRIES', max_entries)
    blocks = msda_module._blocks(3, 4, 10 * 2 * 3 * 4)
    assert len(blocks) > 1
    ours, ref = run_both(*inputs)
    for a, e, name in zip(ours, ref, ('output', 'grad value', 'grad loc', 'grad weights')):
        assert_rel_close(a, e, name=name)


def test_partial_requires_grad():
    value, shapes, starts, loc, weights = make_inputs(1, 5, [(3, 3)])
    loc.requires_grad_()
    out = multi_scale_deformable_attn(value, shapes, starts, loc, weights)
    out.sum().backward()
    loc_ref = loc.detach().clone().requires_grad_()
    multi_scale_deformable_attn_pytorch(value, shapes, loc_ref, weights).sum().backward()
    assert_rel_close(loc.grad, loc_ref.grad, name='grad loc')


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_on_cpu(dtype):
    value, shapes, starts, loc, weights = make_inputs(2, 6, [(4, 4), (2, 2)], dtype=dtype)
    v, l, w = (t.clone().requires_grad_() for t in (value, loc, weights))
    out = multi_scale_deformable_attn(v, shapes, starts, l, w)
    assert out.dtype == dtype
    out.float().sum().backward()
    assert v.grad.dtype == l.grad.dtype == w.grad.dtype == dtype
    # computed in fp32 from the same (rounded) inputs
    ref = multi_scale_deformable_attn_pytorch(value.float(), shapes, loc.float(), weights.float())
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)


def test_bad_shapes_raise_with_names():
    value, shapes, starts, loc, weights = make_inputs(1, 4, [(3, 3)])
    with pytest.raises(ValueError, match='sampling_locations expected shape'):
        multi_scale_deformable_attn(value, shapes, starts, loc[:, :, :1], weights)
    with pytest.raises(ValueError, match='attention_weights expected shape'):
        multi_scale_deformable_attn(value, shapes, starts, loc, weights[..., :1])
    with pytest.raises(ValueError, match=r'num_value=9 but spatial_shapes \[\[3, 4\]\]'):
        multi_scale_deformable_attn(value, torch.tensor([[3, 4]]), starts, loc, weights)
    with pytest.raises(ValueError, match='value must be'):
        multi_scale_deformable_attn(value[0], shapes, starts, loc, weights)


def test_cpu_tensors_take_our_path(monkeypatch, cpu_path):
    value, shapes, starts, loc, weights = make_inputs(1, 4, [(3, 3)])
    assert not msda_module._use_mmcv_cuda_kernel(value)
    called = {}
    for name in ('_MSDeformAttnCpuKernel', '_MSDeformAttnPyTorch'):
        monkeypatch.setattr(getattr(msda_module, name), 'apply',
                            lambda *args, name=name: called.setdefault(name, args) and None)
    multi_scale_deformable_attn(value, shapes, starts, loc, weights)
    expected = '_MSDeformAttnCpuKernel' if cpu_path == 'kernel' else '_MSDeformAttnPyTorch'
    assert list(called) == [expected]


def test_nan_location_gives_nan_output(cpu_path):
    """A NaN sampling location is visible in the output (as in mmcv), not silently zero."""
    value, shapes, starts, loc, weights = make_inputs(1, 3, [(4, 4)], num_points=2)
    loc[0, 1, 0, 0, 0, 0] = float('nan')
    out = multi_scale_deformable_attn(value, shapes, starts, loc, weights)
    assert torch.isnan(out[0, 1, :4]).all()  # query 1, head 0
    assert torch.isfinite(out[0, 0]).all() and torch.isfinite(out[0, 1, 4:]).all()


def test_cuda_dispatch_calls_mmcv_kernel(monkeypatch):
    """The CUDA branch (mocked: no GPU here) hands mmcv's Function the right arguments."""
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
    value, shapes, starts, loc, weights = make_inputs(6, 4, [(3, 3)], dtype=torch.float64)
    value = value.half()
    captured = {}

    def fake_apply(v, s, i, l, w, step):
        captured.update(value=v, loc=l, weights=w, step=step)
        return torch.zeros(1)

    monkeypatch.setattr(msda_module, '_use_mmcv_cuda_kernel', lambda v: True)
    monkeypatch.setattr(MultiScaleDeformableAttnFunction, 'apply', fake_apply)
    multi_scale_deformable_attn(value, shapes, starts, loc, weights, im2col_step=4)
    assert captured['value'] is value
    assert captured['loc'].dtype == captured['weights'].dtype == torch.float16
    # largest divisor of bs=6 not above 4 (mmcv asserts bs % step == 0)
    assert captured['step'] == 3
    assert msda_module._im2col_step_for(6, 64) == 6
    assert msda_module._im2col_step_for(7, 4) == 1
