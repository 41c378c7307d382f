// Dense layers and batched matrix products on OpenBLAS.
//   linear: y = x W^T + b       dx = g W,  dW = g^T x,  db = sum_rows g
//   matmul: C = A B             dA = g B^T, dB = A^T g (summed over the batch when B is shared)
// CUDA tensors (f32, bf16, f64) go to cuBLASLt (kernels/gemm.cu): the bias is fused into the
// forward GEMM as its epilogue and db into the dW GEMM (BGRADB) where cuBLASLt supports it;
// transposed views (w.t(), k.transpose(-1, -2)) are read in place, not copied.
#include <cblas.h>

#include <algorithm>
#include <optional>

#include "autograd/tape.h"
#include "ops/dispatch.h"
#include "ops/gemm.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#endif

namespace gta::ops {

namespace cpu {

namespace {

// OpenBLAS runs single-threaded and the rows of C are split across the OpenMP team instead:
// one thread pool for the whole program (OpenBLAS's own threads and OpenMP's spin-waiting
// workers otherwise fight over the cores), and each element of C is reduced over k by exactly
// one thread, so results do not depend on the thread count.
struct SingleThreadedBlas {
  SingleThreadedBlas() { openblas_set_num_threads(1); }
};

template <typename T, typename Gemm>
void parallel_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                   int64_t ldb, T beta, T* c, int64_t ldc, Gemm&& blas) {
  static SingleThreadedBlas once;
  if (m == 0 || n == 0) return;
  const int64_t work = m * n * std::max<int64_t>(k, 1);
  const int64_t block = work < (1 << 18) ? m : std::max<int64_t>(16, (m + 63) / 64 * 4);  // ~16 blocks
#pragma omp parallel for schedule(dynamic, 1) if (work >= (1 << 18))
  for (int64_t i0 = 0; i0 < m; i0 += block) {
    const int64_t rows = std::min(block, m - i0);
    // Row i of op(A) starts at a + i*lda (no transpose) or at column i of A (transposed).
    const T* ai = ta ? a + i0 : a + i0 * lda;
    blas(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, rows, n, k, alpha, ai, lda, b, ldb, beta,
         c + i0 * ldc, ldc);
  }
}

}  // namespace

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  parallel_gemm<float>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                       [](auto... args) { cblas_sgemm(CblasRowMajor, args...); });
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  parallel_gemm<double>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                        [](auto... args) { cblas_dgemm(CblasRowMajor, args...); });
}

}  // namespace cpu

#ifdef GTA_WITH_CUDA
namespace gpu {

using kernels::MatRef;

// t [..., R, C] as `batch` matrices [R, C] readable in place (row-major or transposed, leading
// dimensions collapsed into one batch stride); nullopt when the layout does not allow it.
std::optional<MatRef> matrix_view(const Tensor& t, int64_t* batch_out = nullptr) {
  const int n = t.ndim();
  const int64_t R = t.shape()[n - 2], C = t.shape()[n - 1], sr = t.strides()[n - 2], sc = t.strides()[n - 1];
  MatRef m;
  m.ptr = t.raw_data();
  if ((C == 1 || sc == 1) && (R == 1 || sr >= std::max<int64_t>(C, 1))) {
    m.trans = false;
    m.ld = R == 1 ? std::max<int64_t>(C, 1) : sr;
  } else if ((R == 1 || sr == 1) && (C == 1 || sc >= std::max<int64_t>(R, 1))) {
    m.trans = true;
    m.ld = C == 1 ? std::max<int64_t>(R, 1) : sc;
  } else {
    return std::nullopt;
  }
  int64_t batch = 1, bs = 0;
  for (int i = n - 3; i >= 0; --i) {
    const int64_t sz = t.shape()[i];
    if (sz == 1) continue;
    if (batch == 1)
      bs = t.strides()[i];
    else if (t.strides()[i] != bs * batch)
      return std::nullopt;
    batch *= sz;
  }
  m.batch_stride = bs;
  if (batch_out) *batch_out = batch;
  return m;
}

// The matrix view of t, or of a contiguous copy of it (kept alive through `keep`).
MatRef matrix_of(const Tensor& t, Tensor& keep) {
  if (auto m = matrix_view(t)) {
    keep = t;
    return *m;
  }
  keep = t.contiguous();
  return *matrix_view(keep);
}

MatRef flip(MatRef m) {
  m.trans = !m.trans;
  return m;
}

MatRef row_major(const Tensor& t, int64_t ld, int64_t batch_stride = 0) {
  MatRef m;
  m.ptr = t.raw_data();
  m.ld = std::max<int64_t>(ld, 1);
  m.batch_stride = batch_stride;
  return m;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, int64_t rows, int64_t in, int64_t outf) {
  cuda::DeviceGuard guard(x.device().index);
  const DType dt = x.dtype();
  Tensor xc = x.contiguous().detach(), wk;
  const MatRef wref = matrix_of(w.detach(), wk);  // W [out, in]
  Tensor bc = b.defined() ? b.contiguous().detach() : Tensor();
  Shape out_shape = x.shape();
  out_shape.back() = outf;
  Tensor y = Tensor::empty(out_shape, dt, x.device());
  // y [rows, out] = x [rows, in] @ W^T [in, out] (+ b)
  kernels::gemm(dt, rows, outf, in, row_major(xc, in), flip(wref), y.raw_data(), std::max<int64_t>(outf, 1), 0, 1,
                1.0, 0.0, bc.defined() ? kernels::GemmEpilogue::bias : kernels::GemmEpilogue::none,
                bc.defined() ? bc.raw_data() : nullptr);
  bool gx = x.requires_grad(), gw = w.requires_grad(), gb = b.defined() && b.requires_grad();
  Shape w_shape = w.shape();
  autograd::record(y, "linear", {x, w, b}, [xc, wk, wref, w_shape, gx, gw, gb, rows, in, outf](const Tensor& g) {
    cuda::DeviceGuard guard(g.device().index);
    const DType dt = g.dtype();
    Tensor gc = g.contiguous();
    std::vector<Tensor> grads(3);
    const MatRef gref = row_major(gc, outf);  // g [rows, out]
    if (gx) {  // dx [rows, in] = g [rows, out] @ W [out, in]
      grads[0] = Tensor::empty(xc.shape(), dt, g.device());
      kernels::gemm(dt, rows, in, outf, gref, wref, grads[0].raw_data(), std::max<int64_t>(in, 1), 0, 1, 1.0, 0.0);
    }
    if (gb) grads[2] = Tensor::empty({outf}, dt, g.device());
    if (gw) {  // dW [out, in] = g^T [out, rows] @ x [rows, in]; db = row sums of g^T, fused when possible
      grads[1] = Tensor::empty(w_shape, dt, g.device());
      kernels::gemm(dt, outf, in, rows, flip(gref), row_major(xc, in), grads[1].raw_data(), std::max<int64_t>(in, 1),
                    0, 1, 1.0, 0.0, gb ? kernels::GemmEpilogue::row_sums_a : kernels::GemmEpilogue::none,
                    gb ? grads[2].raw_data() : nullptr);
    } else if (gb) {
      kernels::sum_middle(dt, gc.raw_data(), dt, grads[2].raw_data(), 1, rows, outf);
    }
    return grads;
  });
  return y;
}

Tensor matmul(const Tensor& a, const Tensor& b, bool shared_b, int64_t batch, int64_t m, int64_t n, int64_t k) {
  cuda::DeviceGuard guard(a.device().index);
  const DType dt = a.dtype();
  Shape out_shape = a.shape();
  out_shape.back() = n;
  Tensor c = Tensor::empty(out_shape, dt, a.device());
  Tensor ak, bk;
  MatRef aref, bref;
  if (shared_b) {  // one GEMM over all batch * m rows of A
    ak = a.contiguous().detach();
    aref = row_major(ak, k);
    bref = matrix_of(b.detach(), bk);
    kernels::gemm(dt, batch * m, n, k, aref, bref, c.raw_data(), std::max<int64_t>(n, 1), 0, 1, 1.0, 0.0);
  } else {
    aref = matrix_of(a.detach(), ak);
    bref = matrix_of(b.detach(), bk);
    if (batch > 0)
      kernels::gemm(dt, m, n, k, aref, bref, c.raw_data(), std::max<int64_t>(n, 1), m * n, batch, 1.0, 0.0);
  }
  bool ga = a.requires_grad(), gb = b.requires_grad();
  Shape a_shape = a.shape(), b_shape = b.shape();
  autograd::record(c, "matmul", {a, b},
                   [ak, bk, aref, bref, a_shape, b_shape, ga, gb, shared_b, batch, m, n, k](const Tensor& g) {
    cuda::DeviceGuard guard(g.device().index);
    const DType dt = g.dtype();
    Tensor gc = g.contiguous();
    std::vector<Tensor> grads(2);
    if (ga) {  // dA = g @ B^T
      grads[0] = Tensor::empty(a_shape, dt, g.device());
      if (shared_b)
        kernels::gemm(dt, batch * m, k, n, row_major(gc, n), flip(bref), grads[0].raw_data(), std::max<int64_t>(k, 1),
                      0, 1, 1.0, 0.0);
      else if (batch > 0)
        kernels::gemm(dt, m, k, n, row_major(gc, n, m * n), flip(bref), grads[0].raw_data(), std::max<int64_t>(k, 1),
                      m * k, batch, 1.0, 0.0);
    }
    if (gb) {  // dB = A^T @ g (summed over the batch when B is shared)
      grads[1] = Tensor::empty(b_shape, dt, g.device());
      if (shared_b)
        kernels::gemm(dt, k, n, batch * m, flip(aref), row_major(gc, n), grads[1].raw_data(), std::max<int64_t>(n, 1),
                      0, 1, 1.0, 0.0);
      else if (batch > 0)
        kernels::gemm(dt, k, n, m, flip(aref), row_major(gc, n, m * n), grads[1].raw_data(), std::max<int64_t>(n, 1),
                      k * n, batch, 1.0, 0.0);
    }
    return grads;
  });
  return c;
}

}  // namespace gpu
#endif

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  require_same_dtype("linear", x, w);
  GTA_CHECK(w.ndim() == 2 && x.ndim() >= 1 && x.size(-1) == w.size(1), "linear: input {} does not fit weight {}",
            x.str(), w.str());
  const int64_t in = w.size(1), outf = w.size(0), rows = x.numel() / std::max<int64_t>(in, 1);
  if (b.defined())
    GTA_CHECK(b.ndim() == 1 && b.size(0) == outf && b.dtype() == x.dtype(), "linear: bias {} for weight {}", b.str(),
              w.str());
  GTA_CHECK(x.device() == w.device() && (!b.defined() || b.device() == x.device()),
            "linear: inputs on different devices: {}, {}{}", x.str(), w.str(), b.defined() ? ", " + b.str() : "");
#ifdef GTA_WITH_CUDA
  if (x.device().is_cuda())
    return gpu::linear(x, w, b, shape_numel(Shape(x.shape().begin(), x.shape().end() - 1)), in, outf);
#endif
  require_cpu("linear", x);
  require_cpu("linear", w);
  Tensor xc = x.contiguous().detach(), wc = w.contiguous().detach();
  Shape out_shape = x.shape();
  out_shape.back() = outf;
  Tensor y = Tensor::empty(out_shape, x.dtype());
  dispatch_float("linear", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* py = y.data<T>();
    if (b.defined()) {
      Tensor bc = b.contiguous();
      const T* pb = bc.data<T>();
#pragma omp parallel for schedule(static) if (rows * outf > 32768)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < outf; ++j) py[r * outf + j] = pb[j];
    }
    cpu::gemm(false, true, rows, outf, in, T(1), xc.data<T>(), in, wc.data<T>(), in, b.defined() ? T(1) : T(0), py,
              outf);
  });
  bool gx = x.requires_grad(), gw = w.requires_grad(), gb = b.defined() && b.requires_grad();
  autograd::record(y, "linear", {x, w, b}, [xc, wc, gx, gw, gb, rows, in, outf](const Tensor& g) {
    Tensor gc = g.contiguous();
    std::vector<Tensor> grads(3);
    dispatch_float("linear_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* pg = gc.data<T>();
      if (gx) {
        grads[0] = Tensor::empty(xc.shape(), g.dtype());
        cpu::gemm(false, false, rows, in, outf, T(1), pg, outf, wc.data<T>(), in, T(0), grads[0].data<T>(), in);
      }
      if (gw) {
        grads[1] = Tensor::empty(wc.shape(), g.dtype());
        cpu::gemm(true, false, outf, in, rows, T(1), pg, outf, xc.data<T>(), in, T(0), grads[1].data<T>(), in);
      }
      if (gb) {
        grads[2] = Tensor::empty({outf}, g.dtype());
        reduce_rows<T>(rows, outf, grads[2].data<T>(), [pg, outf](int64_t r, int64_t j) { return pg[r * outf + j]; });
      }
    });
    return grads;
  });
  return y;
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  require_same_dtype("matmul", a, b);
  GTA_CHECK(a.device() == b.device(), "matmul: inputs on different devices: {} and {}", a.str(), b.str());
  GTA_CHECK(a.ndim() >= 2 && b.ndim() >= 2, "matmul: needs matrices, got {} and {}", a.str(), b.str());
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  GTA_CHECK(b.size(-2) == k, "matmul: inner sizes differ: {} @ {}", a.str(), b.str());
  const bool shared_b = b.ndim() == 2;
  if (!shared_b)
    GTA_CHECK(a.ndim() == b.ndim() && std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin()),
              "matmul: batch dimensions differ: {} @ {}", a.str(), b.str());
  const int64_t batch = a.numel() / std::max<int64_t>(m * k, 1);
#ifdef GTA_WITH_CUDA
  if (a.device().is_cuda())
    return gpu::matmul(a, b, shared_b, shape_numel(Shape(a.shape().begin(), a.shape().end() - 2)), m, n, k);
#endif
  require_cpu("matmul", a);
  require_cpu("matmul", b);
  Tensor ac = a.contiguous().detach(), bc = b.contiguous().detach();
  Shape out_shape = a.shape();
  out_shape.back() = n;
  Tensor c = Tensor::empty(out_shape, a.dtype());
  dispatch_float("matmul", a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (shared_b) {  // one GEMM over all rows of A
      cpu::gemm(false, false, batch * m, n, k, T(1), ac.data<T>(), k, bc.data<T>(), n, T(0), c.data<T>(), n);
      return;
    }
    for (int64_t i = 0; i < batch; ++i)
      cpu::gemm(false, false, m, n, k, T(1), ac.data<T>() + i * m * k, k, bc.data<T>() + i * k * n, n, T(0),
                c.data<T>() + i * m * n, n);
  });
  bool ga = a.requires_grad(), gb = b.requires_grad();
  autograd::record(c, "matmul", {a, b}, [ac, bc, ga, gb, shared_b, batch, m, n, k](const Tensor& g) {
    Tensor gc = g.contiguous();
    std::vector<Tensor> grads(2);
    dispatch_float("matmul_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *pg = gc.data<T>(), *pa = ac.data<T>(), *pb = bc.data<T>();
      if (ga) {
        grads[0] = Tensor::empty(ac.shape(), g.dtype());
        T* da = grads[0].data<T>();
        if (shared_b)
          cpu::gemm(false, true, batch * m, k, n, T(1), pg, n, pb, n, T(0), da, k);
        else
          for (int64_t i = 0; i < batch; ++i)
            cpu::gemm(false, true, m, k, n, T(1), pg + i * m * n, n, pb + i * k * n, n, T(0), da + i * m * k, k);
      }
      if (gb) {
        grads[1] = Tensor::empty(bc.shape(), g.dtype());
        T* db = grads[1].data<T>();
        if (shared_b)
          cpu::gemm(true, false, k, n, batch * m, T(1), pa, k, pg, n, T(0), db, n);
        else
          for (int64_t i = 0; i < batch; ++i)
            cpu::gemm(true, false, k, n, m, T(1), pa + i * m * k, k, pg + i * m * n, n, T(0), db + i * k * n, n);
      }
    });
    return grads;
  });
  return c;
}

}  // namespace gta::ops
