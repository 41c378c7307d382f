// Elementwise ops with numpy broadcasting, and the reductions that undo broadcasting.
//   add: d/da = g, d/db = g        (each summed back to its input's shape)
//   mul: d/da = g*b, d/db = g*a
//   sigmoid: s = 1/(1+e^-x), ds/dx = s(1-s);  silu: x*s, d/dx = s(1 + x(1-s))
#include <algorithm>
#include <cmath>

#include "autograd/node.h"
#include "core/strided.h"
#include "ops/dispatch.h"
#include "ops/ops.h"

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

Tensor binary_forward(const char* name, BinOp op, const Tensor& a, const Tensor& b) {
  require_cpu(name, a);
  require_cpu(name, b);
  require_same_dtype(name, a, b);
  Shape shape = broadcast_shape(name, a.shape(), b.shape());
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
  Tensor out = unary_map("scale", a, [s](auto v) { return v * static_cast<decltype(v)>(s); });
  autograd::record(out, "scale", {a}, [s](const Tensor& g) -> std::vector<Tensor> { return {scale(g, s)}; });
  return out;
}

Tensor sigmoid(const Tensor& x) {
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

void add_(const Tensor& dst, const Tensor& src) {
  require_cpu("add_", dst);
  require_cpu("add_", src);
  require_same_dtype("add_", dst, src);
  GTA_CHECK(dst.shape() == src.shape() && dst.is_contiguous(), "add_: {} += {}", dst.str(), src.str());
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
  require_cpu("fill_", dst);
  GTA_CHECK(dst.is_contiguous(), "fill_: needs a contiguous tensor, got {}", dst.str());
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::fill_n(static_cast<T*>(dst.raw_data()), dst.numel(), from_double<T>(value));
  });
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  require_cpu("sum_to", g);
  GTA_CHECK(broadcast_shape("sum_to", shape, g.shape()) == g.shape(), "sum_to: {} does not broadcast to {}",
            shape_str(shape), shape_str(g.shape()));
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
