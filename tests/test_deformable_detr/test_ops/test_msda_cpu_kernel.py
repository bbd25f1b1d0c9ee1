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
