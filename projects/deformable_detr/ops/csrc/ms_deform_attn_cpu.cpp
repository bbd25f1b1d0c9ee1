// Multi-scale deformable attention on CPU: forward and backward as plain loops.
//
// Semantics are those of projects/deformable_detr/ops/multi_scale_deform_attn.py (mmcv's
// grid_sample reference: bilinear, align_corners=False, zeros outside the level). One sampling
// point reads at most 4 value rows of head_dims contiguous floats; the loops below keep those
// rows in cache instead of materialising per-corner index / weight tensors.
//
// Layouts (all contiguous):
//   value     (bs, num_value, num_heads, head_dims); float / double, or bfloat16 with float
//             locations and weights (the bf16-autocast path: rows are widened as they are read,
//             so the result equals the float kernel on value.float(), without that copy)
//   loc       (bs, num_query, num_heads, num_levels, num_points, 2)   normalized (x, y)
//   weights   (bs, num_query, num_heads, num_levels, num_points)
//   out       (bs, num_query, num_heads, head_dims)
//
// Threads: both passes split the (batch, head) pairs, so a task's value rows stay in cache and
// every thread writes its own rows of the value gradient (no atomics).
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace {

struct Level {
  int64_t h, w, start;
};

// Level geometry; every level must lie inside the num_value rows (the loops do not bound-check
// a level's rows, only the corners against the level's H and W).
std::vector<Level> levels_of(const at::Tensor& spatial_shapes, const at::Tensor& start_index,
                             int64_t num_value) {
  TORCH_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2 &&
                  start_index.dim() == 1 && start_index.size(0) == spatial_shapes.size(0),
              "ms_deform_attn_cpu: spatial_shapes (num_levels, 2) and level_start_index "
              "(num_levels,) expected, got ", spatial_shapes.sizes(), " and ", start_index.sizes());
  auto shapes = spatial_shapes.to(at::kLong).contiguous();
  auto starts = start_index.to(at::kLong).contiguous();
  const int64_t* s = shapes.data_ptr<int64_t>();
  const int64_t* st = starts.data_ptr<int64_t>();
  std::vector<Level> out;
  for (int64_t l = 0; l < shapes.size(0); ++l) {
    const Level lv{s[2 * l], s[2 * l + 1], st[l]};
    TORCH_CHECK(lv.h > 0 && lv.w > 0 && lv.start >= 0 && lv.start + lv.h * lv.w <= num_value,
                "ms_deform_attn_cpu: level ", l, " (H=", lv.h, ", W=", lv.w, ", start ",
                lv.start, ") does not fit in the value's ", num_value, " rows");
    out.push_back(lv);
  }
  return out;
}

// One sampling point on a level: its top-left pixel and fractional offsets. ``inside`` is
// false when the point lies at or beyond one pixel outside the level (x <= -1, x >= w, same
// for y): then every corner reads zero and the point has no gradient.
template <typename T>
struct Point {
  int64_t x0, y0;
  T fx, fy;
  bool inside, nan;
};

template <typename T>
inline Point<T> locate(T lx, T ly, const Level& lv) {
  Point<T> p{0, 0, T(0), T(0), false, false};
  const T x = lx * T(lv.w) - T(0.5);
  const T y = ly * T(lv.h) - T(0.5);
  if (std::isnan(x) || std::isnan(y)) {
    p.nan = true;
    return p;
  }
  p.inside = x > T(-1) && x < T(lv.w) && y > T(-1) && y < T(lv.h);
  if (!p.inside) return p;
  const T xf = std::floor(x), yf = std::floor(y);
  p.x0 = static_cast<int64_t>(xf);
  p.y0 = static_cast<int64_t>(yf);
  p.fx = x - xf;
  p.fy = y - yf;
  return p;
}

// A value element widened to the compute type T (bfloat16 -> float is exact).
template <typename T, typename V>
inline T widen(V x) {
  return static_cast<T>(x);
}

// o[0:n] += a * x[0:n]; n is the compile-time D when D > 0 (fully unrolled, in registers).
template <typename T, typename V, int D>
inline void axpy(T* __restrict o, const V* __restrict x, T a, int64_t n) {
  const int64_t len = D > 0 ? D : n;
#pragma omp simd
  for (int64_t d = 0; d < len; ++d) o[d] += a * widen<T>(x[d]);
}

template <typename T, typename V, int D>
inline T dot(const V* __restrict x, const T* __restrict y, int64_t n) {
  const int64_t len = D > 0 ? D : n;
  T acc = T(0);
#pragma omp simd reduction(+ : acc)
  for (int64_t d = 0; d < len; ++d) acc += widen<T>(x[d]) * y[d];
  return acc;
}

// Forward: one (batch, head) pair per task, so the pair's value rows (num_value x head_dims)
// stay in cache while all its queries read them.
template <typename T, typename V, int D>
void forward_impl(const V* value, const std::vector<Level>& levels, const T* loc, const T* aw,
                  T* out, int64_t bs, int64_t num_value, int64_t num_heads, int64_t head_dims,
                  int64_t num_query, int64_t num_points) {
  const int64_t num_levels = static_cast<int64_t>(levels.size());
  const int64_t row_stride = num_heads * head_dims;  // between value pixels
  const int64_t pts = num_levels * num_points;        // per (query, head)
  const T nan = std::numeric_limits<T>::quiet_NaN();
  at::parallel_for(0, bs * num_heads, 1, [&](int64_t begin, int64_t end) {
    T local[D > 0 ? D : 1];
    for (int64_t bm = begin; bm < end; ++bm) {
      const int64_t b = bm / num_heads, m = bm % num_heads;
      const V* vb = value + b * num_value * row_stride + m * head_dims;
      for (int64_t q = 0; q < num_query; ++q) {
        const int64_t bq = b * num_query + q;
        T* o = out + (bq * num_heads + m) * head_dims;
        T* acc = D > 0 ? local : o;
        for (int64_t d = 0; d < head_dims; ++d) acc[d] = T(0);
        bool has_nan = false;
        const int64_t base = (bq * num_heads + m) * pts;
        for (int64_t l = 0; l < num_levels; ++l) {
          const Level& lv = levels[l];
          const V* vl = vb + lv.start * row_stride;
          for (int64_t k = 0; k < num_points; ++k) {
            const int64_t i = base + l * num_points + k;
            const Point<T> p = locate(loc[2 * i], loc[2 * i + 1], lv);
            has_nan |= p.nan;  // a NaN location gives a NaN output, as in the reference
            if (!p.inside) continue;
            const T a = aw[i];
            const T ax1 = a * p.fx, ax0 = a - ax1, wy0 = T(1) - p.fy;
            const T cw[4] = {ax0 * wy0, ax1 * wy0, ax0 * p.fy, ax1 * p.fy};
            for (int c = 0; c < 4; ++c) {
              const int64_t yy = p.y0 + (c >> 1), xx = p.x0 + (c & 1);
              if (yy < 0 || yy >= lv.h || xx < 0 || xx >= lv.w) continue;
              axpy<T, V, D>(acc, vl + (yy * lv.w + xx) * row_stride, cw[c], head_dims);
            }
          }
        }
        for (int64_t d = 0; d < head_dims; ++d) o[d] = has_nan ? nan : acc[d];
      }
    }
  });
}

// grad_value is always in the compute type T (a bf16 value's gradient is accumulated in float).
template <typename T, typename V, int D>
void backward_impl(const V* value, const std::vector<Level>& levels, const T* loc, const T* aw,
                   const T* grad_out, T* grad_value, T* grad_loc, T* grad_aw, int64_t bs,
                   int64_t num_value, int64_t num_heads, int64_t head_dims, int64_t num_query,
                   int64_t num_points) {
  const int64_t num_levels = static_cast<int64_t>(levels.size());
  const int64_t row_stride = num_heads * head_dims;
  const int64_t pts = num_levels * num_points;
  const bool need_point_grads = grad_loc != nullptr || grad_aw != nullptr;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  at::parallel_for(0, bs * num_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bm = begin; bm < end; ++bm) {
      const int64_t b = bm / num_heads, m = bm % num_heads;
      const int64_t head_off = b * num_value * row_stride + m * head_dims;
      const V* vb = value + head_off;
      T* gvb = grad_value ? grad_value + head_off : nullptr;
      for (int64_t q = 0; q < num_query; ++q) {
        const int64_t bq = b * num_query + q;
        const T* g = grad_out + (bq * num_heads + m) * head_dims;
        const int64_t base = (bq * num_heads + m) * pts;
        for (int64_t l = 0; l < num_levels; ++l) {
          const Level& lv = levels[l];
          const int64_t lvl_off = lv.start * row_stride;
          for (int64_t k = 0; k < num_points; ++k) {
            const int64_t i = base + l * num_points + k;
            const Point<T> p = locate(loc[2 * i], loc[2 * i + 1], lv);
            if (p.nan || !p.inside) {
              const T fill = p.nan ? nan : T(0);
              if (grad_aw) grad_aw[i] = fill;
              if (grad_loc) grad_loc[2 * i] = grad_loc[2 * i + 1] = fill;
              continue;
            }
            const T a = aw[i];
            const T ax1 = a * p.fx, ax0 = a - ax1, wy0 = T(1) - p.fy;
            const T cw[4] = {ax0 * wy0, ax1 * wy0, ax0 * p.fy, ax1 * p.fy};
            T gc[4] = {T(0), T(0), T(0), T(0)};  // <corner's value row, grad_out>
            for (int c = 0; c < 4; ++c) {
              const int64_t yy = p.y0 + (c >> 1), xx = p.x0 + (c & 1);
              if (yy < 0 || yy >= lv.h || xx < 0 || xx >= lv.w) continue;
              const int64_t off = lvl_off + (yy * lv.w + xx) * row_stride;
              if (gvb) axpy<T, T, D>(gvb + off, g, cw[c], head_dims);
              if (need_point_grads) gc[c] = dot<T, V, D>(vb + off, g, head_dims);
            }
            if (!need_point_grads) continue;
            const T s0 = gc[0] * wy0 + gc[2] * p.fy;  // left column, y-interpolated
            const T s1 = gc[1] * wy0 + gc[3] * p.fy;  // right column
            if (grad_aw) grad_aw[i] = s0 + (s1 - s0) * p.fx;
            if (grad_loc) {
              const T t0 = gc[0] + (gc[1] - gc[0]) * p.fx;  // top row, x-interpolated
              const T t1 = gc[2] + (gc[3] - gc[2]) * p.fx;  // bottom row
              // d pixel / d normalized location is the level size
              grad_loc[2 * i] = (s1 - s0) * a * T(lv.w);
              grad_loc[2 * i + 1] = (t1 - t0) * a * T(lv.h);
            }
          }
        }
      }
    }
  });
}

// Calls f with std::integral_constant<int, D>: D = head_dims for the common sizes (the loops
// over a head's channels unroll), else 0 (runtime length).
template <typename F>
void dispatch_head_dims(int64_t head_dims, const F& f) {
  switch (head_dims) {
    case 16: f(std::integral_constant<int, 16>()); break;
    case 32: f(std::integral_constant<int, 32>()); break;
    case 64: f(std::integral_constant<int, 64>()); break;
    default: f(std::integral_constant<int, 0>());
  }
}

void check(const at::Tensor& value, const at::Tensor& loc, const at::Tensor& aw) {
  TORCH_CHECK(value.device().is_cpu() && loc.device().is_cpu() && aw.device().is_cpu(),
              "ms_deform_attn_cpu: CPU tensors expected");
  TORCH_CHECK(value.is_contiguous() && loc.is_contiguous() && aw.is_contiguous(),
              "ms_deform_attn_cpu: contiguous tensors expected");
  TORCH_CHECK(loc.scalar_type() == aw.scalar_type() &&
                  (value.scalar_type() == loc.scalar_type() ||
                   (value.scalar_type() == at::kBFloat16 && loc.scalar_type() == at::kFloat)),
              "ms_deform_attn_cpu: value, loc and weights must share a dtype (or value "
              "bfloat16 with float loc and weights), got ",
              value.scalar_type(), ", ", loc.scalar_type(), " and ", aw.scalar_type());
  TORCH_CHECK(value.dim() == 4 && loc.dim() == 6 && aw.dim() == 5 && loc.size(0) == value.size(0) &&
                  loc.size(2) == value.size(2) && loc.size(5) == 2 &&
                  aw.sizes() == loc.sizes().slice(0, 5),
              "ms_deform_attn_cpu: value (bs, num_value, num_heads, head_dims), loc (bs, "
              "num_query, num_heads, num_levels, num_points, 2) and weights (loc without the "
              "last dim) expected, got ", value.sizes(), ", ", loc.sizes(), " and ", aw.sizes());
}

}  // namespace

// Returns out (bs, num_query, num_heads, head_dims) in loc's dtype.
at::Tensor ms_deform_attn_forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                  const at::Tensor& level_start_index, const at::Tensor& loc,
                                  const at::Tensor& aw) {
  check(value, loc, aw);
  const int64_t bs = value.size(0), num_value = value.size(1), num_heads = value.size(2),
                head_dims = value.size(3), num_query = loc.size(1), num_points = loc.size(4);
  const auto levels = levels_of(spatial_shapes, level_start_index, num_value);
  auto out = at::empty({bs, num_query, num_heads, head_dims}, loc.options());
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "ms_deform_attn_forward", [&] {
    auto run = [&](auto dims, auto* value_ptr) {
      using V = std::remove_const_t<std::remove_pointer_t<decltype(value_ptr)>>;
      forward_impl<scalar_t, V, decltype(dims)::value>(
          value_ptr, levels, loc.data_ptr<scalar_t>(), aw.data_ptr<scalar_t>(),
          out.data_ptr<scalar_t>(), bs, num_value, num_heads, head_dims, num_query, num_points);
    };
    dispatch_head_dims(head_dims, [&](auto dims) {
      if (value.scalar_type() == at::kBFloat16)
        run(dims, value.data_ptr<at::BFloat16>());
      else
        run(dims, value.data_ptr<scalar_t>());
    });
  });
  return out;
}

// Returns [grad_value, grad_loc, grad_weights] in loc's dtype; an undefined tensor where not
// needed.
std::vector<at::Tensor> ms_deform_attn_backward(const at::Tensor& value,
                                                const at::Tensor& spatial_shapes,
                                                const at::Tensor& level_start_index,
                                                const at::Tensor& loc, const at::Tensor& aw,
                                                const at::Tensor& grad_out, bool need_value,
                                                bool need_loc, bool need_weights) {
  check(value, loc, aw);
  TORCH_CHECK(grad_out.is_contiguous() && grad_out.scalar_type() == loc.scalar_type() &&
                  grad_out.numel() == loc.size(0) * loc.size(1) * value.size(2) * value.size(3),
              "ms_deform_attn_cpu: grad_out must be contiguous, of loc's dtype and (bs, "
              "num_query, num_heads * head_dims), got ", grad_out.sizes(), " ",
              grad_out.scalar_type());
  const int64_t bs = value.size(0), num_value = value.size(1), num_heads = value.size(2),
                head_dims = value.size(3), num_query = loc.size(1), num_points = loc.size(4);
  const auto levels = levels_of(spatial_shapes, level_start_index, num_value);
  // the value's gradient in the compute dtype (loc's), whatever the value's own dtype
  at::Tensor gv = need_value ? at::zeros(value.sizes(), loc.options()) : at::Tensor();
  at::Tensor gl = need_loc ? at::empty_like(loc) : at::Tensor();
  at::Tensor ga = need_weights ? at::empty_like(aw) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "ms_deform_attn_backward", [&] {
    auto run = [&](auto dims, auto* value_ptr) {
      using V = std::remove_const_t<std::remove_pointer_t<decltype(value_ptr)>>;
      backward_impl<scalar_t, V, decltype(dims)::value>(
          value_ptr, levels, loc.data_ptr<scalar_t>(), aw.data_ptr<scalar_t>(),
          grad_out.data_ptr<scalar_t>(), need_value ? gv.data_ptr<scalar_t>() : nullptr,
          need_loc ? gl.data_ptr<scalar_t>() : nullptr,
          need_weights ? ga.data_ptr<scalar_t>() : nullptr, bs, num_value, num_heads, head_dims,
          num_query, num_points);
    };
    dispatch_head_dims(head_dims, [&](auto dims) {
      if (value.scalar_type() == at::kBFloat16)
        run(dims, value.data_ptr<at::BFloat16>());
      else
        run(dims, value.data_ptr<scalar_t>());
    });
  });
  return {gv, gl, ga};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &ms_deform_attn_forward, "multi-scale deformable attention forward (CPU)");
  m.def("backward", &ms_deform_attn_backward, "multi-scale deformable attention backward (CPU)");
}
