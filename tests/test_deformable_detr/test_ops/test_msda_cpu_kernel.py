"""Building and loading the compiled CPU kernel of deformable attention (``cpu_kernel.py``):
a build that fails falls back to the PyTorch op with a warning, and the kernel refuses level
geometry that would reach outside the value."""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from projects.deformable_detr.ops import cpu_kernel, multi_scale_deformable_attn
from tests.test_deformable_detr.test_ops.test_multi_scale_deform_attn import (assert_rel_close,
                                                                              make_inputs)


def test_kernel_build_failure_falls_back_with_a_warning(monkeypatch):
    """No compiler: one warning naming the source and the reason, then the PyTorch op."""
    monkeypatch.delenv(cpu_kernel.ENV_VAR, raising=False)
    monkeypatch.setattr(cpu_kernel, '_state', {'loaded': False, 'module': None, 'error': None})

    def no_compiler(verbose=False):
        raise RuntimeError('g++: command not found')

    monkeypatch.setattr(cpu_kernel, 'build_kernel', no_compiler)
    inputs = make_inputs(1, 4, [(3, 3)])
    with pytest.warns(UserWarning, match=r'ms_deform_attn_cpu\.cpp.*g\+\+: command not found'):
        out = multi_scale_deformable_attn(*inputs)
    ref = multi_scale_deformable_attn_pytorch(inputs[0], inputs[1], inputs[3], inputs[4])
    assert_rel_close(out, ref)
    assert cpu_kernel.load_cpu_kernel() is None  # remembered: no rebuild per call


def test_kernel_refuses_levels_outside_the_value(monkeypatch):
    """Called directly (past the Python checks), the kernel names the level that does not fit."""
    monkeypatch.delenv(cpu_kernel.ENV_VAR, raising=False)
    kernel = cpu_kernel.load_cpu_kernel()
    assert kernel is not None, cpu_kernel._state['error']
    value, shapes, _, loc, weights = make_inputs(1, 4, [(3, 3), (2, 2)])
    with pytest.raises(RuntimeError, match=r'level 1 \(H=2, W=2, start 10\) does not fit in '
                                           r"the value's 13 rows"):
        kernel.forward(value, shapes, torch.tensor([0, 10]), loc, weights)
    with pytest.raises(RuntimeError, match='weights .* expected, got'):
        kernel.forward(value, shapes, torch.tensor([0, 9]), loc, weights[..., :1].contiguous())


def test_kernel_reads_a_bf16_value_as_the_fp32_kernel_reads_its_float_copy(monkeypatch):
    """The bf16-autocast path: a bf16 value goes to the kernel as it is (no fp32 copy) with fp32
    locations / weights, and gives the fp32 kernel's output and value gradient on
    ``value.float()`` bit for bit (bf16 -> fp32 is exact; the arithmetic is the same); the
    location / weight gradients are dot products whose vectorised summation order may differ
    (measured max 3e-8 of their scale). head_dims 32 runs the unrolled loops, 4 the
    runtime-length ones."""
    monkeypatch.delenv(cpu_kernel.ENV_VAR, raising=False)
    assert cpu_kernel.load_cpu_kernel() is not None, cpu_kernel._state['error']
    for head_dims in (32, 4):
        value, shapes, starts, loc, weights = make_inputs(2, 7, [(5, 6), (3, 2)],
                                                          head_dims=head_dims)
        value = value.bfloat16()
        results = []
        for v0 in (value, value.float()):
            v, l, w = (t.clone().requires_grad_() for t in (v0, loc, weights))
            out = multi_scale_deformable_attn(v, shapes, starts, l, w)
            # the same (bf16-representable) output gradient for both
            grad_out = torch.linspace(-1, 1, out.numel()).bfloat16().view_as(out).to(out.dtype)
            out.backward(grad_out)
            results.append((out, v.grad, l.grad, w.grad))
        (out, gv, gl, gw), (out32, gv32, gl32, gw32) = results
        assert out.dtype == gv.dtype == torch.bfloat16
        assert torch.equal(out, out32.bfloat16())
        assert torch.equal(gv, gv32.bfloat16())
        assert_rel_close(gl, gl32, rtol=2e-6, name='grad loc')
        assert_rel_close(gw, gw32, rtol=2e-6, name='grad weights')
        assert gv.abs().sum() > 0 and gl.abs().sum() > 0  # the comparison is not vacuous
        # and the kernel itself takes the bf16 value with fp32 locations / weights, returning fp32
        kernel = cpu_kernel.load_cpu_kernel()
        direct = kernel.forward(value.contiguous(), shapes, starts, loc, weights)
        assert direct.dtype == torch.float32
        assert torch.equal(direct.view_as(out32), out32.detach())
