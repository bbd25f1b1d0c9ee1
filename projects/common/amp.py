"""Mixed precision on the CPU.

mmengine's ``AmpOptimWrapper`` asserts that CUDA (or an NPU/MLU) is present. On the CPU,
autocast supports bfloat16, which has fp32's exponent range and so needs no loss
scaling: this wrapper only adds the autocast context. ``tools/train.py --amp`` picks it
when there is no GPU, so the same command runs everywhere.
"""
import contextlib

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast('cpu', dtype)``.

    Args:
        dtype (str): 'bfloat16' (default) or 'float16'.
    """

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f'CPUAutocastOptimWrapper dtype must be bfloat16 or float16, got {dtype!r}')
        self.cast_dtype = getattr(torch, dtype)

    @contextlib.contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
