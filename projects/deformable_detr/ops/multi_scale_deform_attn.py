"""Multi-scale deformable attention: mmcv's CUDA kernel on CUDA; on CPU our compiled kernel
(``csrc/ms_deform_attn_cpu.cpp``, see ``cpu_kernel.py``), or, where it cannot be built (or with
``BEVFORMER_MSDA_CPU=pytorch``), the kernel-free PyTorch op described below.

Semantics are those of mmcv's ``multi_scale_deformable_attn_pytorch``: each
sampling location is bilinearly interpolated on its level exactly like
``F.grid_sample(mode='bilinear', padding_mode='zeros', align_corners=False)``
(pixel coordinate ``loc * size - 0.5``; out-of-image corners read zero), the
samples are weighted by the attention weights and summed over levels and points.

How the kernel-free PyTorch op works (and why it is faster / leaner than the grid_sample
reference; the compiled kernel does the same sums as plain loops, 2-3x faster again):

- Each level of ``value`` is padded by one zero pixel on every side, so the 4
  bilinear corners of any point are valid rows (a corner outside the image
  reads a zero, no masks), and the attention weight is folded into the 4
  corner weights. One query-head is then a weighted sum of
  ``num_levels * num_points * 4`` value rows: exactly
  ``F.embedding_bag(mode='sum', per_sample_weights=...)`` over the padded value
  viewed as ``(bs * num_pad * num_heads, head_dims)`` rows, one fused
  gather-and-reduce with no ``(..., num_points, head_dims)`` intermediate.
- The backward is written by hand. The corner-weight gradient
  ``<value row, grad_out[query]>`` is a dense-dense product sampled at the
  corner rows (``torch.sparse.sampled_addmm``). The value gradient is the
  transposed gather: the points are sorted once by their top-left pixel, each
  pixel becomes a bag of the points on it, and per corner one ``embedding_bag``
  over ``grad_out`` gives that corner's contribution, added shifted by the
  corner's offset. Location and attention-weight gradients follow from the
  corner-weight gradient in closed form.
- Work goes in blocks of (batch, head) pairs holding at most ``_MAX_BLOCK_ENTRIES``
  corner entries, and only the inputs are saved for backward (indices are
  recomputed), so peak memory stays bounded for big shapes.

Threads: the CPU path issues ~100 mid-sized tensor ops per block, each an OpenMP
parallel region. On a CPU shared with other busy processes every region can wait
milliseconds for a descheduled thread, so there use ``torch.set_num_threads(1)``
(measured on a 2-core box at load ~5: 1 thread was 2-10x faster than 2 threads for
this op; mmcv's reference, a few big grid_sample calls, suffers less).
"""
import warnings
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .cpu_kernel import load_cpu_kernel

# Corner entries (samples x 4) processed at once; bounds the temporary memory
# (~50 bytes per entry) on big shapes like BEVFormer's spatial cross-attention.
_MAX_BLOCK_ENTRIES = 1 << 22

# Corners as (dy, dx); every per-corner tensor below follows this order.
_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _check_inputs(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                  sampling_locations: Tensor, attention_weights: Tensor) -> None:
    """Raise a ValueError naming the argument, expected and actual shape."""
    where = 'multi_scale_deformable_attn'
    if value.dim() != 4:
        raise ValueError(f'{where}: value must be (bs, num_value, num_heads, head_dims), '
                         f'got shape {tuple(value.shape)}')
    bs, num_value, num_heads, _ = value.shape
    if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2:
        raise ValueError(f'{where}: spatial_shapes must be (num_levels, 2) as (H, W), '
                         f'got shape {tuple(spatial_shapes.shape)}')
    num_levels = spatial_shapes.shape[0]
    if sampling_locations.dim() != 6 or sampling_locations.shape[-1] != 2:
        raise ValueError(f'{where}: sampling_locations must be (bs, num_query, num_heads, '
                         f'num_levels, num_points, 2), got shape {tuple(sampling_locations.shape)}')
    _, num_query, _, _, num_points, _ = sampling_locations.shape
    expected = (bs, num_query, num_heads, num_levels, num_points, 2)
    if tuple(sampling_locations.shape) != expected:
        raise ValueError(f'{where}: sampling_locations expected shape {expected} (from value '
                         f'{tuple(value.shape)} and spatial_shapes {tuple(spatial_shapes.shape)}), '
                         f'got {tuple(sampling_locations.shape)}')
    if tuple(attention_weights.shape) != expected[:-1]:
        raise ValueError(f'{where}: attention_weights expected shape {expected[:-1]}, '
                         f'got {tuple(attention_weights.shape)}')
    if tuple(level_start_index.shape) != (num_levels,):
        raise ValueError(f'{where}: level_start_index expected shape ({num_levels},), '
                         f'got {tuple(level_start_index.shape)}')
    if spatial_shapes.is_cuda:
        return  # summing the shapes would sync the device on every call; the caller checks
    sizes = spatial_shapes[:, 0] * spatial_shapes[:, 1]
    total = int(sizes.sum())
    if total != num_value:
        raise ValueError(f'{where}: value has num_value={num_value} but spatial_shapes '
                         f'{spatial_shapes.tolist()} give sum(H*W)={total}')
    # the CPU kernel reads level l at rows [start_l, start_l + H_l * W_l): a wrong start would
    # read (and, in backward, write) outside the value
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    if not torch.equal(level_start_index.to(starts), starts):
        raise ValueError(f'{where}: level_start_index {level_start_index.tolist()} is not the '
                         f'start of each level of spatial_shapes {spatial_shapes.tolist()} '
                         f'(expected {starts.tolist()})')


def _use_mmcv_cuda_kernel(value: Tensor) -> bool:
    """The mmcv kernel serves CUDA tensors; everything else takes our own path."""
    return value.is_cuda


def _im2col_step_for(bs: int, im2col_step: int) -> int:
    """Largest divisor of ``bs`` not above ``im2col_step``: mmcv's kernel asserts
    ``bs % im2col_step == 0`` (BEVFormer issue #188), so never hand it one that fails."""
    step = max(1, min(bs, im2col_step))
    while bs % step:
        step -= 1
    return step


def multi_scale_deformable_attn(value: Tensor,
                                spatial_shapes: Tensor,
                                level_start_index: Tensor,
                                sampling_locations: Tensor,
                                attention_weights: Tensor,
                                im2col_step: int = 64) -> Tensor:
    """Multi-scale deformable attention (mmcv's argument conventions).

    Args:
        value (Tensor): (bs, num_value, num_heads, head_dims); the levels are
            flattened row-major and concatenated along ``num_value``.
        spatial_shapes (Tensor): (num_levels, 2) long, (H, W) of each level.
        level_start_index (Tensor): (num_levels,) long, first row of each level.
        sampling_locations (Tensor): (bs, num_query, num_heads, num_levels,
            num_points, 2), normalized (x, y); (0, 0) is the top-left image corner
            and (1, 1) the bottom-right one. Values outside [0, 1] read zeros.
        attention_weights (Tensor): (bs, num_query, num_heads, num_levels, num_points).
        im2col_step (int): batch chunk of mmcv's CUDA kernel (CUDA only).

    Returns:
        Tensor: (bs, num_query, num_heads * head_dims), in ``value.dtype``.
    """
    _check_inputs(value, spatial_shapes, level_start_index, sampling_locations,
                  attention_weights)
    if torch.onnx.is_in_onnx_export():
        # ONNX has no deformable-attention op; mmcv's grid_sample formulation exports with
        # standard operators (GridSample, opset >= 16) and computes the same values.
        from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
        return multi_scale_deformable_attn_pytorch(value, spatial_shapes, sampling_locations,
                                                   attention_weights)
    if _use_mmcv_cuda_kernel(value):
        from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
        return MultiScaleDeformableAttnFunction.apply(
            value, spatial_shapes, level_start_index,
            sampling_locations.to(value.dtype), attention_weights.to(value.dtype),
            _im2col_step_for(value.shape[0], im2col_step))
    if value.device.type == 'cpu' and load_cpu_kernel() is not None:
        return _MSDeformAttnCpuKernel.apply(value, spatial_shapes, level_start_index,
                                            sampling_locations, attention_weights)
    return _MSDeformAttnPyTorch.apply(value, spatial_shapes, level_start_index,
                                      sampling_locations, attention_weights)


class _Levels:
    """Level geometry of the value, and its zero-padded copy.

    Each level is padded by one zero pixel on every side, so the 4 bilinear
    corners of any point that touches the level are valid rows, and a corner
    outside the image reads a zero instead of needing a mask.
    """

    def __init__(self, spatial_shapes: Tensor, level_start_index: Tensor, num_value: int):
        self.shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
        self.starts = [int(s) for s in level_start_index.tolist()]
        self.pad_sizes = [(h + 2) * (w + 2) for h, w in self.shapes]
        self.pad_starts = [sum(self.pad_sizes[:i]) for i in range(len(self.shapes))]
        self.num_value = num_value
        self.num_pad = sum(self.pad_sizes)

    def pad(self, v: Tensor) -> Tensor:
        """(bs, num_value, num_heads, head_dims) -> (bs, num_pad, num_heads, head_dims)."""
        # Zero only the one-pixel border: filling the whole buffer first was a second pass
        # over the value as large as the copy itself.
        out = v.new_empty(v.shape[0], self.num_pad, *v.shape[2:])
        for (h, w), s, ps in zip(self.shapes, self.starts, self.pad_starts):
            grid = out[:, ps:ps + (h + 2) * (w + 2)].view(v.shape[0], h + 2, w + 2, *v.shape[2:])
            grid[:, 0::h + 1].zero_()  # top and bottom rows
            grid[:, 1:h + 1, 0::w + 1].zero_()  # left and right columns
            grid[:, 1:h + 1, 1:w + 1] = v[:, s:s + h * w].reshape(v.shape[0], h, w, *v.shape[2:])
        return out

    def unpad_into(self, dst: Tensor, padded: Tensor) -> None:
        """Copy the interiors of ``padded`` (n, num_pad, ...) into ``dst`` (n, num_value, ...)."""
        n, rest = padded.shape[0], padded.shape[2:]
        for (h, w), s, ps in zip(self.shapes, self.starts, self.pad_starts):
            grid = padded[:, ps:ps + (h + 2) * (w + 2)].view(n, h + 2, w + 2, *rest)
            dst[:, s:s + h * w].view(n, h, w, *rest).copy_(grid[:, 1:h + 1, 1:w + 1])


def _blocks(bs: int, num_heads: int, entries_per_pair: int) -> List[Tuple[int, int, int, int]]:
    """Split the (batch, head) grid into blocks ``(b0, b1, m0, m1)`` of bounded size."""
    pairs = max(1, _MAX_BLOCK_ENTRIES // max(1, entries_per_pair))
    if pairs >= num_heads:  # whole heads, several samples
        step = pairs // num_heads
        return [(b, min(b + step, bs), 0, num_heads) for b in range(0, bs, step)]
    return [(b, b + 1, m, min(m + pairs, num_heads))
            for b in range(bs) for m in range(0, num_heads, pairs)]


def _to_pairs(x: Tensor, b0: int, b1: int, m0: int, m1: int) -> Tensor:
    """(bs, num_query, num_heads, *rest) -> (pairs, num_query, *rest) of one block.

    A pair is (b, m), ordered b-major."""
    x = x[b0:b1, :, m0:m1]
    return x.transpose(1, 2).reshape((b1 - b0) * (m1 - m0), x.shape[1], *x.shape[3:])


def _from_pairs(dst: Tensor, src: Tensor, b0: int, b1: int, m0: int, m1: int) -> None:
    """Inverse of :func:`_to_pairs`: ``src`` (pairs, n, *rest) -> ``dst[b0:b1, :, m0:m1]``."""
    blk = src.view(b1 - b0, m1 - m0, *src.shape[1:]).transpose(1, 2)
    dst[b0:b1, :, m0:m1] = blk


def _sampling_plan(loc: Tensor, aw: Tensor, levels: _Levels, row_base: Tensor,
                   num_heads: int, need_masks: bool = True) -> Dict[str, Tensor]:
    """Bilinear corners of every sampling point of a block, on the padded value.

    Args:
        loc (Tensor): (pairs, num_query, num_levels, num_points, 2) normalized (x, y).
        aw (Tensor): (pairs, num_query, num_levels, num_points) attention weights.
        row_base (Tensor): (pairs,) int32 or int64, row of (b, padded pixel 0, m)
            in the flat padded value (bs * num_pad * num_heads rows).
        need_masks (bool): compute ``in_x`` / ``in_y`` (only the location gradient reads
            them; the forward skips them).

    Returns:
        dict of (pairs, num_query, num_levels, num_points) tensors unless noted:
        ``rows`` (pairs, num_query, 4, num_levels, num_points) int rows of the
        corners (order (0,0), (0,1), (1,0), (1,1) as (dy, dx)); ``cw`` same
        shape, the corner weights with the attention weight folded in;
        ``fx, fy`` the fractional offsets; ``in_x, in_y`` whether the point
        is strictly inside (-1, W) / (-1, H), outside of which it reads zeros
        and has no location gradient; ``key`` int top-left padded pixel index
        within the pair (int32 when ``row_base`` is int32, else int64).
    """
    dev, dtype = loc.device, loc.dtype
    w_l = torch.tensor([w for _, w in levels.shapes], device=dev, dtype=dtype).view(-1, 1)
    h_l = torch.tensor([h for h, _ in levels.shapes], device=dev, dtype=dtype).view(-1, 1)
    x = loc[..., 0] * w_l - 0.5  # align_corners=False pixel coordinates
    y = loc[..., 1] * h_l - 0.5
    in_x = (x > -1) & (x < w_l) if need_masks else None
    in_y = (y > -1) & (y < h_l) if need_masks else None
    # Beyond one pixel outside, every corner reads padding: clamp onto the border,
    # then keep the top-left corner inside [-1, size - 1] so (x0 + 1) is in the pad.
    x = torch.minimum(torch.maximum(x, -torch.ones_like(w_l)), w_l)
    y = torch.minimum(torch.maximum(y, -torch.ones_like(h_l)), h_l)
    # NaN locations give NaN weights (NaN output, as in mmcv) but valid rows
    x0 = torch.minimum(x.floor(), w_l - 1).nan_to_num_(nan=-1.0)
    y0 = torch.minimum(y.floor(), h_l - 1).nan_to_num_(nan=-1.0)
    fx = x - x0
    fy = y - y0

    # Indices in int32 when they fit: sorts and gathers on them run faster.
    idx_dtype = torch.int32 if row_base.dtype == torch.int32 else torch.int64
    pad_w = torch.tensor([w + 2 for _, w in levels.shapes], device=dev, dtype=idx_dtype)
    pad_start = torch.tensor(levels.pad_starts, device=dev, dtype=idx_dtype).view(-1, 1)
    key = pad_start + (y0.to(idx_dtype) + 1) * pad_w.view(-1, 1) + (x0.to(idx_dtype) + 1)
    r00 = row_base.view(-1, 1, 1, 1) + key * num_heads  # top-left corner row
    # the other corners are one column right and / or one (padded) row down
    corner_offset = torch.stack([torch.zeros_like(pad_w), torch.ones_like(pad_w), pad_w,
                                 pad_w + 1]) * num_heads  # (4, num_levels)
    rows = r00.unsqueeze(2) + corner_offset.view(1, 1, 4, -1, 1)

    ax1 = aw * fx
    ax0 = aw - ax1
    wy0 = 1 - fy
    cw = torch.stack([ax0 * wy0, ax1 * wy0, ax0 * fy, ax1 * fy], dim=2)
    return dict(rows=rows, cw=cw, fx=fx, fy=fy, in_x=in_x, in_y=in_y, key=key)


def _sparse_csr(crow: Tensor, col: Tensor, vals: Tensor, size: Tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta" is not news
        warnings.simplefilter('ignore')
        return torch.sparse_csr_tensor(crow, col, vals, size, check_invariants=False)


def _padded_value_grad(plan: Dict[str, Tensor], grad_out: Tensor, levels: _Levels,
                       num_heads: int) -> Tensor:
    """Padded value gradient of one block: each corner row receives
    ``corner weight * grad_out[query]``.

    The 4 corners of a point hang off its top-left pixel, so the points are
    sorted once by that pixel; each pixel is then a bag of its points, and corner
    c is one ``embedding_bag`` over ``grad_out`` (weights: the corner weights),
    shifted by the corner's offset in the padded grid.

    Args:
        grad_out (Tensor): (pairs * num_query, head_dims).

    Returns:
        Tensor: (pairs, num_pad, head_dims).
    """
    pairs, num_query, _, num_levels, num_points = plan['cw'].shape
    dev = grad_out.device
    num_pad = levels.num_pad
    num_rows = pairs * num_pad
    key = plan['key'] + torch.arange(pairs, device=dev, dtype=plan['key'].dtype).view(
        -1, 1, 1, 1) * num_pad
    key_sorted, order = torch.sort(key.reshape(-1))
    offsets = torch.zeros(num_rows, dtype=key.dtype, device=dev)
    torch.cumsum(torch.bincount(key_sorted, minlength=num_rows)[:-1], 0, out=offsets[1:])
    # the query (bag) of each point; points are laid out (pair, query, level, point)
    order = order.to(key.dtype)
    query = torch.div(order, num_levels * num_points, rounding_mode='floor')
    # flat index of (point, corner 0) in cw's (pair, query, corner, level, point) layout
    cw_index = order + query * (3 * num_levels * num_points)
    cw_flat = plan['cw'].reshape(-1)

    grad = grad_out.new_zeros(pairs, num_pad, grad_out.shape[1])
    flat = grad.view(pairs * num_pad, -1)
    for c, (dy, dx) in enumerate(_CORNERS):
        # Transposed gather: every top-left pixel is a bag of the points on it.
        part = F.embedding_bag(query, grad_out, offsets, mode='sum',
                               per_sample_weights=cw_flat[cw_index + c * num_levels * num_points])
        # corner (dy, dx) of top-left padded pixel k is pixel k + dy * (W + 2) + dx of
        # the same level; a top-left pixel is at most (H, W), so no shift crosses a level
        # or a pair.
        if dy == 0:
            flat[dx:] += part[:num_rows - dx]
        else:
            part = part.view(pairs, num_pad, -1)
            for (h, w), ps, sz in zip(levels.shapes, levels.pad_starts, levels.pad_sizes):
                shift = (w + 2) + dx
                grad[:, ps + shift:ps + sz] += part[:, ps:ps + sz - shift]
    return grad


def _save_inputs(ctx, *inputs: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Forward preamble of the PyTorch Function: save the inputs only (indices and weights are
    recomputed in backward), return value / locations / weights in the compute dtype."""
    ctx.save_for_backward(*inputs)
    value, _, _, sampling_locations, attention_weights = inputs
    return _compute_dtype(value, sampling_locations, attention_weights)


class _MSDeformAttnPyTorch(torch.autograd.Function):
    """Our PyTorch op with a hand-written backward; inputs only are saved."""

    @staticmethod
    def forward(ctx, value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
        v, loc, aw = _save_inputs(ctx, value, spatial_shapes, level_start_index,
                                  sampling_locations, attention_weights)
        bs, num_value, num_heads, head_dims = v.shape
        num_query = loc.shape[1]
        levels = _Levels(spatial_shapes, level_start_index, num_value)
        v_rows = levels.pad(v).view(-1, head_dims)
        out = v.new_empty(bs, num_query, num_heads, head_dims)
        for b0, b1, m0, m1, plan in _iter_blocks(loc, aw, levels, num_heads, need_masks=False):
            per_query = plan['cw'][0, 0].numel() if num_query else 0
            res = F.embedding_bag(plan['rows'].reshape(-1, per_query), v_rows,
                                  per_sample_weights=plan['cw'].view(-1, per_query),
                                  mode='sum')
            _from_pairs(out, res.view(-1, num_query, head_dims), b0, b1, m0, m1)
        return out.view(bs, num_query, num_heads * head_dims).to(value.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights = \
            ctx.saved_tensors
        need_v, _, _, need_loc, need_aw = ctx.needs_input_grad
        v, loc, aw = _compute_dtype(value, sampling_locations, attention_weights)
        bs, num_value, num_heads, head_dims = v.shape
        num_query = loc.shape[1]
        levels = _Levels(spatial_shapes, level_start_index, num_value)
        g = grad_output.to(v.dtype).reshape(bs, num_query, num_heads, head_dims)
        v_rows = levels.pad(v).view(-1, head_dims) if (need_loc or need_aw) else None
        # every block writes all of its (batch, head) pairs, so no zero-fill is needed
        grad_v = v.new_empty(v.shape) if need_v else None
        grad_loc = loc.new_empty(loc.shape) if need_loc else None
        grad_aw = aw.new_empty(aw.shape) if need_aw else None
        w_l = spatial_shapes[:, 1].to(v).view(-1, 1)
        h_l = spatial_shapes[:, 0].to(v).view(-1, 1)

        for b0, b1, m0, m1, plan in _iter_blocks(loc, aw, levels, num_heads):
            pairs = (b1 - b0) * (m1 - m0)
            # contiguous: an expanded grad (from .sum()) would slow the gathers down
            g_blk = _to_pairs(g, b0, b1, m0, m1).reshape(pairs * num_query, head_dims).contiguous()
            if need_v:
                gv = _padded_value_grad(plan, g_blk, levels, num_heads)
                gv_blk = gv.new_empty(pairs, num_value, head_dims)
                levels.unpad_into(gv_blk, gv)
                _write_value_grad(grad_v, gv_blk, b0, b1, m0, m1)
            if not (need_loc or need_aw):
                continue
            # d out / d corner weight = <corner's value row, grad_out of its query>,
            # a dense-dense product sampled at the corner rows.
            cw = plan['cw']
            per_query = cw[0, 0].numel()
            crow = torch.arange(0, cw.numel() + 1, per_query, device=v.device,
                                dtype=plan['rows'].dtype)
            pattern = _sparse_csr(crow, plan['rows'].reshape(-1), cw.reshape(-1),
                                  (pairs * num_query, v_rows.shape[0]))
            g00, g01, g10, g11 = torch.sparse.sampled_addmm(
                pattern, g_blk, v_rows.t(), beta=0.0).values().view(cw.shape).unbind(2)
            fx, fy = plan['fx'], plan['fy']
            wy0 = 1 - fy
            s0 = g00 * wy0 + g10 * fy  # left column, y-interpolated
            s1 = g01 * wy0 + g11 * fy  # right column
            if need_aw:
                ga = s0 + (s1 - s0) * fx
                _from_pairs(grad_aw, ga, b0, b1, m0, m1)
            if need_loc:
                a = _to_pairs(aw, b0, b1, m0, m1)
                t0 = g00 + (g01 - g00) * fx  # top row, x-interpolated
                t1 = g10 + (g11 - g10) * fx  # bottom row
                # d pixel / d normalized location is the level size (W for x, H for y)
                gx = (s1 - s0) * a * w_l * plan['in_x']
                gy = (t1 - t0) * a * h_l * plan['in_y']
                _from_pairs(grad_loc, torch.stack([gx, gy], dim=-1), b0, b1, m0, m1)

        def cast(grad: Optional[Tensor], like: Tensor) -> Optional[Tensor]:
            return None if grad is None else grad.to(like.dtype)

        return (cast(grad_v, value), None, None, cast(grad_loc, sampling_locations),
                cast(grad_aw, attention_weights))


class _MSDeformAttnCpuKernel(torch.autograd.Function):
    """The compiled CPU kernel (``csrc/ms_deform_attn_cpu.cpp``); inputs only are saved."""

    @staticmethod
    def forward(ctx, value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
        ctx.save_for_backward(value, spatial_shapes, level_start_index, sampling_locations,
                              attention_weights)
        v, loc, aw = _kernel_dtype(value, sampling_locations, attention_weights)
        out = load_cpu_kernel().forward(v, spatial_shapes, level_start_index, loc, aw)
        return out.view(v.shape[0], loc.shape[1], -1).to(value.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        inputs = ctx.saved_tensors  # value, spatial_shapes, level_start_index, loc, weights
        need = [ctx.needs_input_grad[i] for i in (0, 3, 4)]
        v, loc, aw = _kernel_dtype(inputs[0], inputs[3], inputs[4])
        grads = load_cpu_kernel().backward(v, inputs[1], inputs[2], loc, aw,
                                           grad_output.to(loc.dtype).contiguous(), *need)
        grad_v, grad_loc, grad_aw = (g.to(x.dtype) if n else None
                                     for g, x, n in zip(grads, (inputs[0], inputs[3], inputs[4]),
                                                        need))
        return grad_v, None, None, grad_loc, grad_aw


def _write_value_grad(grad_v: Tensor, gv_blk: Tensor, b0: int, b1: int, m0: int, m1: int) -> None:
    """``gv_blk`` (pairs, num_value, head_dims) -> ``grad_v[b0:b1, :, m0:m1]`` of
    (bs, num_value, num_heads, head_dims)."""
    grad_v[b0:b1, :, m0:m1] = gv_blk.view(b1 - b0, m1 - m0, *gv_blk.shape[1:]).transpose(1, 2)


def _compute_dtype(value: Tensor, loc: Tensor, aw: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """fp16 / bf16 inputs are computed in fp32 (CPU half math is slow and lossy);
    float64 stays float64 (gradcheck)."""
    dtype = torch.float64 if value.dtype == torch.float64 else torch.float32
    return value.to(dtype), loc.to(dtype), aw.to(dtype)


def _kernel_dtype(value: Tensor, loc: Tensor, aw: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Contiguous inputs of the compiled kernel: as :func:`_compute_dtype`, except that a
    bf16 value stays bf16 (the kernel widens its rows to fp32 as it reads them: the same
    result as the fp32 kernel on ``value.float()``, without copying the whole value)."""
    if value.dtype == torch.bfloat16:
        return value.contiguous(), loc.float().contiguous(), aw.float().contiguous()
    return tuple(t.contiguous() for t in _compute_dtype(value, loc, aw))


def _iter_blocks(loc: Tensor, aw: Tensor, levels: _Levels, num_heads: int,
                 need_masks: bool = True):
    """Yield ``(b0, b1, m0, m1, plan)`` per block of (batch, head) pairs."""
    bs, num_query, _, num_levels, num_points, _ = loc.shape
    for b0, b1, m0, m1 in _blocks(bs, num_heads, num_query * num_levels * num_points * 4):
        b_idx = torch.arange(b0, b1, device=loc.device).view(-1, 1)
        m_idx = torch.arange(m0, m1, device=loc.device).view(1, -1)
        row_base = (b_idx * levels.num_pad * num_heads + m_idx).reshape(-1)
        if bs * levels.num_pad * num_heads < 2**31:
            row_base = row_base.int()
        plan = _sampling_plan(_to_pairs(loc, b0, b1, m0, m1), _to_pairs(aw, b0, b1, m0, m1),
                              levels, row_base, num_heads, need_masks)
        yield b0, b1, m0, m1, plan
