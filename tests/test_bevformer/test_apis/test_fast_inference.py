"""optimize_for_cpu_inference: conv-BN fusion and channels_last keep the outputs (fp32
rounding only), refuse training models, and reach tools/test.py through a hook."""
import copy
from types import SimpleNamespace

import pytest
import torch

from projects.bevformer.apis import (OptimizeForInferenceHook, init_model,
                                     optimize_for_cpu_inference)
from tests.test_bevformer.tiny_bevformer import tiny_cfg

# Largest |optimized - default| over the largest |default| of the features; measured ~1e-6
# on the tiny config (fp32 re-association of the folded BN and NHWC convolution order).
FP32_TOL = 1e-5


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    cfg = tiny_cfg(str(tmp_path_factory.mktemp('fast')))
    for key in ('img_backbone', 'img_neck'):
        cfg.model[key]['init_cfg'] = None
    torch.manual_seed(0)
    model = init_model(cfg)
    for m in model.img_backbone.modules():  # non-trivial BN statistics, so fusion matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


@pytest.mark.parametrize('fuse,channels_last', [(True, False), (False, True), (True, True)])
def test_outputs_equal_the_default_within_fp32_rounding(model, fuse, channels_last):
    imgs = torch.rand(1, 6, 3, 64, 96) * 255  # (bs, num_cams, 3, H, W)
    fast = optimize_for_cpu_inference(copy.deepcopy(model), fuse, channels_last)
    if fuse:
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.img_backbone.modules())
    with torch.no_grad():
        want = model.extract_img_feat(imgs)
        got = fast.extract_img_feat(imgs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert _rel(g, w) < FP32_TOL


def test_bf16_autocast_with_channels_last_stays_close(model):
    """The fast bf16 path (autocast + NHWC): bf16 has 8 mantissa bits, so ~1e-2."""
    imgs = torch.rand(1, 6, 3, 64, 96) * 255
    fast = optimize_for_cpu_inference(copy.deepcopy(model), True, True)
    with torch.no_grad():
        want = model.extract_img_feat(imgs)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            got = fast.extract_img_feat(imgs)
    for g, w in zip(got, want):
        assert _rel(g, w) < 5e-2


def test_no_option_is_a_no_op_and_training_is_refused(model):
    same = copy.deepcopy(model)
    assert optimize_for_cpu_inference(same) is same
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in same.img_backbone.modules())
    with pytest.raises(ValueError, match='eval mode'):
        optimize_for_cpu_inference(copy.deepcopy(model).train(), fuse_conv_bn=True)


def test_hook_applies_after_loading_and_test_tool_accepts_the_flags(model):
    runner = SimpleNamespace(model=copy.deepcopy(model).train())
    OptimizeForInferenceHook(fuse_conv_bn=True, channels_last=True).before_test(runner)
    assert not runner.model.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in runner.model.modules()
                   if m in set(runner.model.img_backbone.modules()))
    from tools.test import parse_args
    args = parse_args(['cfg.py', 'ckpt.pth', '--fuse-conv-bn', '--channels-last',
                       '--compile-bev-encoder'])
    assert args.fuse_conv_bn and args.channels_last and args.compile_bev_encoder


def test_compiled_bev_encoder_gives_the_eager_bev(model):
    """``compile_bev_encoder``: B_t of a batch of 2 with a previous BEV (history frame encoded
    by the compiled layers too) equals the eager model's within fp32 rounding, the weights and
    state dict untouched; non-BEVFormer models are refused by name."""
    from tools.analysis.benchmark_model import make_inputs, make_samples
    inputs = make_inputs(model, 2, 2, [64, 96], 'cpu', True)
    samples = make_samples(model, 2, False)
    eager = copy.deepcopy(model).eval()
    fast = optimize_for_cpu_inference(copy.deepcopy(model).eval(), compile_bev_encoder=True)
    assert list(fast.state_dict()) == list(eager.state_dict())
    assert all(layer._compiled_call_impl is not None for layer in fast.bev_encoder.layers)
    with torch.no_grad():
        want = eager.extract_bev(inputs, samples)
        got = fast.extract_bev(inputs, samples)
    assert got.shape == want.shape == (2, 64, 32)
    assert _rel(got, want) < FP32_TOL
    with pytest.raises(ValueError, match='needs a model with a bev_encoder.*Linear'):
        optimize_for_cpu_inference(torch.nn.Linear(2, 2).eval(), compile_bev_encoder=True)
