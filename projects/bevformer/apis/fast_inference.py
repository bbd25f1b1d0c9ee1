"""Optional CPU inference speed-ups (off by default).

The backbone + neck (ResNet + FPN) is ~90 % of a frame on CPU. Two standard rewrites speed
it up without changing what it computes beyond float rounding:

- ``fuse_conv_bn``: fold every eval-mode BatchNorm into the convolution before it (mmcv's
  ``fuse_conv_bn``); removes one pass over every feature map. Inference only: the BN
  layers are gone afterwards, so the model can neither train nor load a checkpoint.
- ``channels_last``: NHWC weights and input, the layout oneDNN's convolutions run natively
  (no reorder around every conv); with bf16 autocast it also lets them use AMX.

A third compiles the BEV encoder:

- ``compile_bev_encoder``: ``torch.compile`` (inductor) on each BEV encoder layer
  (``nn.Module.compile``: the weights and the state dict stay as they are). The first frame
  pays the compilation (about a minute at the tiny shape on 2 cores) and a new input shape one
  more (then its sizes are compiled as dynamic); the deformable-attention kernel runs between
  the compiled graphs.

Measured on the tiny config (6 x 480x800): outputs within 2e-6 of the default relative to
the largest feature value (fp32); see README "Speed and deployment" for the timings.
"""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from projects.bevformer.models.detectors.multiview_features import MultiViewFeaturesMixin

IMAGE_MODULES = ('img_backbone', 'img_neck')


def optimize_for_cpu_inference(model: nn.Module, fuse_conv_bn: bool = False,
                               channels_last: bool = False,
                               compile_bev_encoder: bool = False) -> nn.Module:
    """Apply the optional speed-ups to ``model.img_backbone`` / ``model.img_neck`` (and
    ``model.bev_encoder``) in place.

    Args:
        model (nn.Module): a detector in eval mode with its weights loaded (a wrapper such as
            DDP is unwrapped).
        fuse_conv_bn (bool): fold BatchNorm into the preceding convolutions.
        channels_last (bool): NHWC weights; NHWC input images too for the multi-view
            detectors (``BEVFormer``, ``PerspectivePretrainer``: their ``img_channels_last``).
            Other models (e.g. the 2D Deformable DETR) get NHWC weights only and oneDNN
            reorders their NCHW images.
        compile_bev_encoder (bool): ``torch.compile`` each layer of ``model.bev_encoder``
            (BEVFormer detectors only).

    Returns:
        nn.Module: ``model`` itself.
    """
    inner = model.module if is_model_wrapper(model) else model
    if not (fuse_conv_bn or channels_last or compile_bev_encoder):
        return model
    if inner.training:
        raise ValueError('optimize_for_cpu_inference: the model must be in eval mode (these '
                         'are inference speed-ups: fused BatchNorm cannot train, the compiled '
                         'encoder layers are traced in eval mode)')
    if compile_bev_encoder:
        encoder = getattr(inner, 'bev_encoder', None)
        if encoder is None or not hasattr(encoder, 'layers'):
            raise ValueError(f'optimize_for_cpu_inference: compile_bev_encoder needs a model '
                             f'with a bev_encoder (BEVFormer); {type(inner).__name__} has none')
        for layer in encoder.layers:
            layer.compile()
    from mmcv.cnn import fuse_conv_bn as fuse
    for name in IMAGE_MODULES:
        module = getattr(inner, name, None)
        if module is None:
            continue
        if fuse_conv_bn:
            fuse(module)
        if channels_last:
            module.to(memory_format=torch.channels_last)
    if channels_last and isinstance(inner, MultiViewFeaturesMixin):
        inner.img_channels_last = True  # NHWC images, the detectors' own switch
    return model


class OptimizeForInferenceHook(Hook):
    """Runner hook for ``tools/test.py``: the speed-ups once the checkpoint is loaded
    (``before_test`` runs after ``Runner.load_or_resume``)."""

    priority = 'VERY_LOW'

    def __init__(self, fuse_conv_bn: bool = False, channels_last: bool = False,
                 compile_bev_encoder: bool = False) -> None:
        self.fuse_conv_bn = fuse_conv_bn
        self.channels_last = channels_last
        self.compile_bev_encoder = compile_bev_encoder

    def before_test(self, runner) -> None:
        runner.model.eval()
        optimize_for_cpu_inference(runner.model, self.fuse_conv_bn, self.channels_last,
                                   self.compile_bev_encoder)
