"""Stop training at the first non-finite loss or gradient, before it reaches the weights.

One NaN in one frame's input used to make every later loss NaN; the run went on, exited 0
and saved a checkpoint of NaN weights. :class:`NonFiniteCheckHook` checks

1. every loss term, right after the model's forward in ``mode='loss'`` (a forward hook),
   before the backward pass;
2. every gradient, right before the optimizer step (an optimizer step pre-hook), after
   gradient clipping and, under DDP, after the all-reduce (so all ranks agree). With fp16
   AMP (a ``GradScaler``) non-finite gradients are the scaler's business: it skips the step
   and lowers the scale without calling the optimizer;
3. the weights of every checkpoint before it is written.

``action='raise'`` (default) stops with :class:`NonFiniteLossError` naming the iteration,
the loss terms or parameters, and the samples' tokens (``data_samples[i].metainfo['token']``).
``action='skip'`` (for the rare user who wants it) drops the update of that iteration
(gradients set to None: no step, no momentum, no weight decay), restores the BN running
statistics the bad forward changed, logs a warning, and carries on; ``max_skips`` bounds
how many iterations may be skipped in a row before it raises anyway.
"""
from typing import Any, Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """A loss term, a gradient or a weight about to be saved is NaN or infinite."""


def sample_tokens(data_batch: Any) -> List[str]:
    """The ``token`` (or ``sample_idx`` / ``img_path``) of each data sample of a batch."""
    if not isinstance(data_batch, dict):
        return []
    samples = data_batch.get('data_samples') or []
    tokens = []
    for sample in samples if isinstance(samples, (list, tuple)) else [samples]:
        meta = getattr(sample, 'metainfo', sample if isinstance(sample, dict) else {})
        for key in ('token', 'sample_idx', 'img_path'):
            if key in meta:
                tokens.append(str(meta[key]))
                break
    return tokens


def _loss_terms(losses: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """The entries of a loss dict that mmengine sums into the loss (``'loss'`` in the name)."""
    terms = {}
    for name, value in losses.items():
        if 'loss' not in name:
            continue
        if isinstance(value, torch.Tensor):
            terms[name] = value
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, torch.Tensor):
                    terms[f'{name}[{i}]'] = item
    return terms


def _optimizers(optim_wrapper) -> List[torch.optim.Optimizer]:
    if hasattr(optim_wrapper, 'optim_wrappers'):  # OptimWrapperDict
        return [w.optimizer for w in optim_wrapper.optim_wrappers.values()]
    return [optim_wrapper.optimizer]


def _uses_grad_scaler(optim_wrapper) -> bool:
    wrappers = (optim_wrapper.optim_wrappers.values()
                if hasattr(optim_wrapper, 'optim_wrappers') else [optim_wrapper])
    return any(getattr(w, 'loss_scaler', None) is not None for w in wrappers)


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """See the module docstring.

    Args:
        action (str): ``'raise'`` or ``'skip'``.
        check_grads (bool): also check the gradients before each optimizer step.
        max_skips (int): with ``'skip'``, raise after this many consecutive skipped
            iterations.
    """
    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'raise', check_grads: bool = True,
                 max_skips: int = 10) -> None:
        if action not in ('raise', 'skip'):
            raise ValueError(f"NonFiniteCheckHook: action must be 'raise' or 'skip', got "
                             f'{action!r}')
        self.action, self.check_grads, self.max_skips = action, check_grads, max_skips
        self._handles: List[Any] = []
        self._in_iter = False
        self._iter = 0
        self._tokens: List[str] = []
        self._bad: Optional[str] = None
        self._buffers: Dict[str, torch.Tensor] = {}
        self._skipped_in_a_row = 0
        self.num_skipped = 0

    # ---------------------------------------------------------------- set-up
    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._model = model
        self._names = {id(p): n for n, p in model.named_parameters()}
        self._handles.append(model.register_forward_hook(self._check_losses, with_kwargs=True))
        if self.check_grads and not _uses_grad_scaler(runner.optim_wrapper):
            for optimizer in _optimizers(runner.optim_wrapper):
                self._handles.append(optimizer.register_step_pre_hook(self._check_grads))

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        self._in_iter, self._iter, self._bad = True, runner.iter + 1, None
        self._tokens = sample_tokens(data_batch)
        if self.action == 'skip':
            self._buffers = {n: b.detach().clone() for n, b in self._model.named_buffers()
                             if b.is_floating_point()}

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        self._in_iter = False
        if self._bad is None:
            self._skipped_in_a_row = 0
            return
        # action == 'skip': the step was dropped; undo what the forward did to BN stats
        with torch.no_grad():
            for name, buf in self._model.named_buffers():
                if name in self._buffers:
                    buf.copy_(self._buffers[name])
        self.num_skipped += 1
        self._skipped_in_a_row += 1
        print_log(f'NonFiniteCheckHook: skipped the update of iteration {self._iter}: '
                  f'{self._bad}', logger='current', level=30)
        if self._skipped_in_a_row > self.max_skips:
            raise NonFiniteLossError(f'{self._skipped_in_a_row} iterations in a row had '
                                     f'non-finite losses or gradients (max_skips='
                                     f'{self.max_skips}); last: {self._bad}')

    # ---------------------------------------------------------------- checks
    def _where(self) -> str:
        tokens = self._tokens
        if not tokens:
            return f'iteration {self._iter}'
        return f'iteration {self._iter} (samples: {", ".join(tokens)})'

    def _fail(self, what: str) -> None:
        if self.action == 'raise':
            raise NonFiniteLossError(
                f'{what} at {self._where()}. Training stopped before the update, so no '
                f'checkpoint holds it; the last checkpoint is intact. Check these samples\' '
                f'inputs (NaN in can_bus / ego2global / images?) or lower the learning rate; '
                f'NonFiniteCheckHook(action=\'skip\') drops such iterations instead.')
        if self._bad is None:
            self._bad = f'{what} ({self._where()})'

    def _check_losses(self, module, args, kwargs, output) -> None:
        if not self._in_iter or kwargs.get('mode') != 'loss' or not isinstance(output, dict):
            return
        bad = []
        for name, value in _loss_terms(output).items():
            if not bool(torch.isfinite(value.detach()).all()):
                shown = value.detach().float()
                shown = float(shown) if shown.numel() == 1 else shown.flatten()[:4].tolist()
                bad.append(f'{name}={shown}')
        if bad:
            self._fail(f'non-finite loss {", ".join(bad)}')

    def _check_grads(self, optimizer, args, kwargs) -> None:
        if not self._in_iter:
            return
        params = [p for group in optimizer.param_groups for p in group['params']
                  if p.grad is not None]
        if self._bad is None and params:
            finite = torch.stack([torch.isfinite(p.grad).all() for p in params])
            if not bool(finite.all()):
                names = [self._names.get(id(p), '?') for p, ok in zip(params, finite.tolist())
                         if not ok]
                shown = ', '.join(names[:5]) + (f', ... ({len(names) - 5} more)'
                                                if len(names) > 5 else '')
                self._fail(f'non-finite gradient in {len(names)} parameter(s): {shown}')
        if self._bad is not None:  # skip: no step for anything
            for p in params:
                p.grad = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict', {})
        bad = [k for k, v in state.items()
               if isinstance(v, torch.Tensor) and v.is_floating_point()
               and not bool(torch.isfinite(v).all())]
        if bad:
            raise NonFiniteLossError(
                f'refusing to write a checkpoint at iteration {runner.iter + 1}: {len(bad)} of '
                f'{len(state)} tensors hold NaN / inf (e.g. {", ".join(bad[:5])})')
