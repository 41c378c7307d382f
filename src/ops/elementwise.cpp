// Elementwise ops with numpy broadcasting, and the reductions that undo broadcasting.
//   add: d/da = g, d/db = g        (each summed back to its input's shape)
//   mul: d/da = g*b, d/db = g*a
//   sigmoid: s = 1/(1+e^-x), ds/dx = s(1-s);  silu: x*s, d/dx = s(1 + x(1-s))
//   swiglu(a, b) = silu(a) b: d/da = g b s(1 + a(1-s)), d/db = g silu(a)  (fused: the MLP's gate
//   costs one pass over memory instead of silu then mul, and saves a and b instead of silu(a) and b)
// Every entry point (and every backward, which receives gradients on the inputs' device)
// dispatches on the device: CUDA tensors go to kernels/elementwise.cu (f32, bf16, f64), CPU
// tensors to the loops here (f32, f64).
#include <algorithm>
#include <cmath>

#include "autograd/tape.h"
#include "core/strided.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/elementwise.h"
#endif

namespace gta::ops {

namespace {

Shape broadcast_shape(const char* op, const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i + a.size() >= n ? a[i + a.size() - n] : 1;
    int64_t db = i + b.size() >= n ? b[i + b.size() - n] : 1;
    GTA_CHECK(da == db || da == 1 || db == 1, "{}: shapes {} and {} do not broadcast", op, shape_str(a),
              shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides of `t` viewed with broadcast shape `shape` (0 along broadcast dimensions).
Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  size_t n = shape.size(), m = t.shape().size();
  Shape st(n, 0);
  for (size_t i = n - m; i < n; ++i)
    if (t.shape()[i - (n - m)] == shape[i]) st[i] = t.strides()[i - (n - m)];
  return st;
}

// Offset of flat row-major index `i` of `shape` under `strides`.
inline int64_t strided_offset(int64_t i, const Shape& shape, const Shape& strides) {
  int64_t off = 0;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    off += (i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return off;
}

enum class BinOp { add, sub, mul };

template <typename T>
inline T apply(BinOp op, T x, T y) {
  switch (op) {
    case BinOp::add: return x + y;
    case BinOp::sub: return x - y;
    case BinOp::mul: return x * y;
  }
  return x;
}

#ifdef GTA_WITH_CUDA
namespace gpu {

kernels::BinaryOp kernel_op(BinOp op) {
  switch (op) {
    case BinOp::add: return kernels::BinaryOp::add;
    case BinOp::sub: return kernels::BinaryOp::sub;
    case BinOp::mul: return kernels::BinaryOp::mul;
  }
  return kernels::BinaryOp::add;
}

Tensor binary(BinOp op, const Tensor& a, const Tensor& b, const Shape& shape) {
  cuda::DeviceGuard guard(a.device().index);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  const Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
  kernels::binary(kernel_op(op), a.dtype(), out.raw_data(), a.raw_data(), sa.data(), b.raw_data(), sb.data(),
                  shape.data(), static_cast<int>(shape.size()));
  return out;
}

Tensor unary(kernels::UnaryOp op, const Tensor& x, double alpha = 0) {
  cuda::DeviceGuard guard(x.device().index);
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::unary(op, x.dtype(), out.raw_data(), xc.raw_data(), x.numel(), alpha);
  return out;
}

// The backward of an elementwise op: dx = f(g, saved) with saved contiguous on g's device.
template <typename Launch>
Tensor backward_map(const Tensor& g, const Tensor& saved, Launch&& launch) {
  cuda::DeviceGuard guard(g.device().index);
  Tensor gc = g.contiguous();
  Tensor dx = Tensor::empty(g.shape(), g.dtype(), g.device());
  launch(g.dtype(), dx.raw_data(), gc.raw_data(), saved.raw_data(), g.numel());
  return dx;
}

}  // namespace gpu
#endif

inline void require_same_device(const char* op, const Tensor& a, const Tensor& b) {
  GTA_CHECK(a.device() == b.device(), "{}: inputs on different devices: {} and {}", op, a.str(), b.str());
}

Tensor binary_forward(const char* name, BinOp op, const Tensor& a, const Tensor& b) {
  require_same_device(name, a, b);
  require_same_dtype(name, a, b);
  Shape shape = broadcast_shape(name, a.shape(), b.shape());
#ifdef GTA_WITH_CUDA
  if (a.device().is_cuda()) return gpu::binary(op, a, b, shape);
#endif
  require_cpu(name, a);
  require_cpu(name, b);
  Tensor out = Tensor::empty(shape, a.dtype());
  const int64_t n = out.numel();
  dispatch_float(name, a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    if (a.shape() == shape && b.shape() == shape && a.is_contiguous() && b.is_contiguous()) {
#pragma omp parallel for schedule(static) if (n > 32768)
      for (int64_t i = 0; i < n; ++i) o[i] = apply(op, pa[i], pb[i]);
      return;
    }
    Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
    const int64_t inner = shape.empty() ? 1 : shape.back();
    const int64_t ia = sa.empty() ? 0 : sa.back(), ib = sb.empty() ? 0 : sb.back();
    const int64_t rows = inner ? n / inner : 0;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t r = 0; r < rows; ++r) {
      int64_t oa = strided_offset(r * inner, shape, sa), ob = strided_offset(r * inner, shape, sb);
      for (int64_t j = 0; j < inner; ++j) o[r * inner + j] = apply(op, pa[oa + j * ia], pb[ob + j * ib]);
    }
  });
  return out;
}

template <typename F>
Tensor unary_map(const char* name, const Tensor& x, F&& f) {
  require_cpu(name, x);
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const int64_t n = x.numel();
  dispatch_float(name, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = xc.data<T>();
    T* o = out.data<T>();
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) o[i] = f(p[i]);
  });
  return out;
}

template <typename T>
inline T sigmoid_of(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

#ifdef GTA_WITH_CUDA
// sum_to on the GPU: g's dimensions (size-1 ones dropped) form runs of kept and of reduced
// dimensions; each pass reduces the innermost remaining reduced run of the contiguous tensor,
// seen as [P, R, Q], to [P, Q]. Intermediate passes keep fp32 (fp64) partials.
Tensor gpu_sum_to(const Tensor& g, const Shape& shape) {
  cuda::DeviceGuard guard(g.device().index);
  Tensor cur = g.contiguous();
  const int gn = g.ndim(), lead = gn - static_cast<int>(shape.size());
  std::vector<std::pair<int64_t, bool>> runs;  // (size, reduced)
  for (int i = 0; i < gn; ++i) {
    const int64_t gd = g.shape()[i], td = i >= lead ? shape[i - lead] : 1;
    if (gd == 1) continue;
    const bool reduced = td == 1;
    if (!runs.empty() && runs.back().second == reduced)
      runs.back().first *= gd;
    else
      runs.push_back({gd, reduced});
  }
  const DType acc = g.dtype() == DType::f64 ? DType::f64 : DType::f32;
  for (;;) {
    int last = -1, n_reduced = 0;
    for (int i = 0; i < static_cast<int>(runs.size()); ++i)
      if (runs[i].second) last = i, ++n_reduced;
    if (last < 0) break;
    int64_t P = 1, Q = 1;
    for (int i = 0; i < last; ++i) P *= runs[i].first;
    for (int i = last + 1; i < static_cast<int>(runs.size()); ++i) Q *= runs[i].first;
    const DType out_dtype = n_reduced == 1 ? g.dtype() : acc;
    Tensor next = Tensor::empty({P * Q}, out_dtype, g.device());
    kernels::sum_middle(cur.dtype(), cur.raw_data(), out_dtype, next.raw_data(), P, runs[last].first, Q);
    runs.erase(runs.begin() + last);
    cur = next;
  }
  return make_view(cur, shape, contiguous_strides(shape), cur.offset());
}
#endif

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("add", BinOp::add, a, b);
  Shape sa = a.shape(), sb = b.shape();
  autograd::record(out, "add", {a, b}, [sa, sb](const Tensor& g) -> std::vector<Tensor> {
    return {sum_to(g, sa), sum_to(g, sb)};
  });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("sub", BinOp::sub, a, b);
  Shape sa = a.shape(), sb = b.shape();
  autograd::record(out, "sub", {a, b}, [sa, sb](const Tensor& g) -> std::vector<Tensor> {
    return {sum_to(g, sa), sum_to(scale(g, -1.0), sb)};
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("mul", BinOp::mul, a, b);
  Tensor da = a.detach(), db = b.detach();
  bool ga = a.requires_grad(), gb = b.requires_grad();
  autograd::record(out, "mul", {a, b}, [da, db, ga, gb](const Tensor& g) -> std::vector<Tensor> {
    return {ga ? sum_to(mul(g, db), da.shape()) : Tensor(), gb ? sum_to(mul(g, da), db.shape()) : Tensor()};
  });
  return out;
}

Tensor scale(const Tensor& a, double s) {
#ifdef GTA_WITH_CUDA
  if (a.device().is_cuda()) {
    Tensor out = gpu::unary(kernels::UnaryOp::scale, a, s);
    autograd::record(out, "scale", {a}, [s](const Tensor& g) -> std::vector<Tensor> { return {scale(g, s)}; });
    return out;
  }
#endif
  Tensor out = unary_map("scale", a, [s](auto v) { return v * static_cast<decltype(v)>(s); });
  autograd::record(out, "scale", {a}, [s](const Tensor& g) -> std::vector<Tensor> { return {scale(g, s)}; });
  return out;
}

Tensor sigmoid(const Tensor& x) {
#ifdef GTA_WITH_CUDA
  if (x.device().is_cuda()) {
    Tensor out = gpu::unary(kernels::UnaryOp::sigmoid, x);
    Tensor y = out.detach();
    autograd::record(out, "sigmoid", {x}, [y](const Tensor& g) -> std::vector<Tensor> {
      return {gpu::backward_map(g, y, kernels::sigmoid_backward)};
    });
    return out;
  }
#endif
  Tensor out = unary_map("sigmoid", x, [](auto v) { return sigmoid_of(v); });
  Tensor y = out.detach();
  autograd::record(out, "sigmoid", {x}, [y](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = Tensor::empty(g.shape(), g.dtype());
    Tensor gc = g.contiguous();
    dispatch_float("sigmoid_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *pg = gc.data<T>(), *py = y.data<T>();
      T* o = dx.data<T>();
      const int64_t n = g.numel();
#pragma omp parallel for schedule(static) if (n > 32768)
      for (int64_t i = 0; i < n; ++i) o[i] = pg[i] * py[i] * (T(1) - py[i]);
    });
    return {dx};
  });
  return out;
}

Tensor silu(const Tensor& x) {
#ifdef GTA_WITH_CUDA
  if (x.device().is_cuda()) {
    Tensor out = gpu::unary(kernels::UnaryOp::silu, x);
    Tensor xd = x.detach().contiguous();
    autograd::record(out, "silu", {x}, [xd](const Tensor& g) -> std::vector<Tensor> {
      return {gpu::backward_map(g, xd, kernels::silu_backward)};
    });
    return out;
  }
#endif
  Tensor out = unary_map("silu", x, [](auto v) { return v * sigmoid_of(v); });
  Tensor xd = x.detach().contiguous();
  autograd::record(out, "silu", {x}, [xd](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = Tensor::empty(g.shape(), g.dtype());
    Tensor gc = g.contiguous();
    dispatch_float("silu_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *pg = gc.data<T>(), *px = xd.data<T>();
      T* o = dx.data<T>();
      const int64_t n = g.numel();
#pragma omp parallel for schedule(static) if (n > 32768)
      for (int64_t i = 0; i < n; ++i) {
        T s = sigmoid_of(px[i]);
        o[i] = pg[i] * s * (T(1) + px[i] * (T(1) - s));
      }
    });
    return {dx};
  });
  return out;
}

Tensor swiglu(const Tensor& a, const Tensor& b) {
  require_same_device("swiglu", a, b);
  require_same_dtype("swiglu", a, b);
  GTA_CHECK(a.shape() == b.shape(), "swiglu: shapes {} and {} differ", a.str(), b.str());
  Tensor ad = a.detach().contiguous(), bd = b.detach().contiguous();
#ifdef GTA_WITH_CUDA
  if (a.device().is_cuda()) {
    cuda::DeviceGuard guard(a.device().index);
    Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
    kernels::swiglu(a.dtype(), out.raw_data(), ad.raw_data(), bd.raw_data(), a.numel());
    autograd::record(out, "swiglu", {a, b}, [ad, bd](const Tensor& g) -> std::vector<Tensor> {
      cuda::DeviceGuard guard(g.device().index);
      Tensor gc = g.contiguous();
      Tensor da = Tensor::empty(g.shape(), g.dtype(), g.device()), db = Tensor::empty(g.shape(), g.dtype(), g.device());
      kernels::swiglu_backward(g.dtype(), da.raw_data(), db.raw_data(), gc.raw_data(), ad.raw_data(), bd.raw_data(),
                               g.numel());
      return {da, db};
    });
    return out;
  }
#endif
  require_cpu("swiglu", a);
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  const int64_t n = a.numel();
  dispatch_float("swiglu", a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *pa = ad.data<T>(), *pb = bd.data<T>();
    T* o = out.data<T>();
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) o[i] = pa[i] * sigmoid_of(pa[i]) * pb[i];
  });
  autograd::record(out, "swiglu", {a, b}, [ad, bd](const Tensor& g) -> std::vector<Tensor> {
    Tensor gc = g.contiguous();
    Tensor da = Tensor::empty(g.shape(), g.dtype()), db = Tensor::empty(g.shape(), g.dtype());
    dispatch_float("swiglu_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *pg = gc.data<T>(), *pa = ad.data<T>(), *pb = bd.data<T>();
      T *oa = da.data<T>(), *ob = db.data<T>();
      const int64_t n = g.numel();
#pragma omp parallel for schedule(static) if (n > 32768)
      for (int64_t i = 0; i < n; ++i) {
        const T s = sigmoid_of(pa[i]);
        oa[i] = pg[i] * pb[i] * s * (T(1) + pa[i] * (T(1) - s));
        ob[i] = pg[i] * pa[i] * s;
      }
    });
    return {da, db};
  });
  return out;
}

void add_(const Tensor& dst, const Tensor& src) {
  require_same_device("add_", dst, src);
  require_same_dtype("add_", dst, src);
  GTA_CHECK(dst.shape() == src.shape() && dst.is_contiguous(), "add_: {} += {}", dst.str(), src.str());
#ifdef GTA_WITH_CUDA
  if (dst.device().is_cuda()) {
    cuda::DeviceGuard guard(dst.device().index);
    Tensor s = src.contiguous();
    kernels::add_inplace(dst.dtype(), dst.raw_data(), s.raw_data(), dst.numel());
    return;
  }
#endif
  require_cpu("add_", dst);
  Tensor s = src.contiguous();
  const int64_t n = dst.numel();
  dispatch_float("add_", dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* d = dst.data<T>();
    const T* p = s.data<T>();
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) d[i] += p[i];
  });
}

void fill_(const Tensor& dst, double value) {
  GTA_CHECK(dst.is_contiguous(), "fill_: needs a contiguous tensor, got {}", dst.str());
#ifdef GTA_WITH_CUDA
  if (dst.device().is_cuda()) {
    cuda::DeviceGuard guard(dst.device().index);
    kernels::fill(dst.dtype(), dst.raw_data(), dst.numel(), value);
    return;
  }
#endif
  require_cpu("fill_", dst);
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::fill_n(static_cast<T*>(dst.raw_data()), dst.numel(), from_double<T>(value));
  });
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  GTA_CHECK(broadcast_shape("sum_to", shape, g.shape()) == g.shape(), "sum_to: {} does not broadcast to {}",
            shape_str(shape), shape_str(g.shape()));
#ifdef GTA_WITH_CUDA
  if (g.device().is_cuda()) return gpu_sum_to(g, shape);
#endif
  require_cpu("sum_to", g);
  Tensor out = Tensor::zeros(shape, g.dtype());
  Tensor gc = g.contiguous();
  // View `out` at g's shape with stride 0 on the broadcast dims, then accumulate into it. Serial,
  // in index order: deterministic, and these reductions are small next to the GEMMs around them.
  Shape st = broadcast_strides(out, g.shape());
  const Shape& gs = g.shape();
  dispatch_float("sum_to", g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* p = gc.data<T>();
    const int64_t inner = gs.back(), rows = g.numel() / std::max<int64_t>(inner, 1);
    const int64_t is = st.back();
    for (int64_t r = 0; r < rows; ++r) {
      int64_t off = strided_offset(r * inner, gs, st);
      for (int64_t j = 0; j < inner; ++j) o[off + j * is] += p[r * inner + j];
    }
  });
  return out;
}

Tensor sum(const Tensor& x) {
#ifdef GTA_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::DeviceGuard guard(x.device().index);
    Tensor xc = x.contiguous();
    Tensor out = Tensor::empty({1}, x.dtype(), x.device());
    kernels::sum_middle(x.dtype(), xc.raw_data(), x.dtype(), out.raw_data(), 1, x.numel(), 1);
    Shape s = x.shape();
    autograd::record(out, "sum", {x}, [s](const Tensor& g) -> std::vector<Tensor> {
      // Broadcast the scalar gradient on the device (no host round trip).
      return {make_view(g, s, Shape(s.size(), 0), g.offset()).contiguous()};
    });
    return out;
  }
#endif
  require_cpu("sum", x);
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty({1}, x.dtype());
  dispatch_float("sum", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = xc.data<T>();
    reduce_rows<T>(x.numel(), 1, out.data<T>(), [p](int64_t r, int64_t) { return p[r]; });
  });
  Shape s = x.shape();
  autograd::record(out, "sum", {x}, [s](const Tensor& g) -> std::vector<Tensor> {
    return {Tensor::full(s, g.item(), g.dtype())};
  });
  return out;
}

Tensor mean(const Tensor& x) { return scale(sum(x), 1.0 / static_cast<double>(std::max<int64_t>(x.numel(), 1))); }

}  // namespace gta::ops
