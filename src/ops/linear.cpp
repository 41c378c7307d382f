// Dense layers and batched matrix products on OpenBLAS.
//   linear: y = x W^T + b       dx = g W,  dW = g^T x,  db = sum_rows g
//   matmul: C = A B             dA = g B^T, dB = A^T g (summed over the batch when B is shared)
#include <cblas.h>

#include <algorithm>

#include "autograd/node.h"
#include "ops/dispatch.h"
#include "ops/gemm.h"
#include "ops/ops.h"

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

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  require_cpu("linear", x);
  require_cpu("linear", w);
  require_same_dtype("linear", x, w);
  GTA_CHECK(w.ndim() == 2 && x.ndim() >= 1 && x.size(-1) == w.size(1), "linear: input {} does not fit weight {}",
            x.str(), w.str());
  const int64_t in = w.size(1), outf = w.size(0), rows = x.numel() / std::max<int64_t>(in, 1);
  if (b.defined())
    GTA_CHECK(b.ndim() == 1 && b.size(0) == outf && b.dtype() == x.dtype(), "linear: bias {} for weight {}", b.str(),
              w.str());
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
  require_cpu("matmul", a);
  require_cpu("matmul", b);
  require_same_dtype("matmul", a, b);
  GTA_CHECK(a.ndim() >= 2 && b.ndim() >= 2, "matmul: needs matrices, got {} and {}", a.str(), b.str());
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  GTA_CHECK(b.size(-2) == k, "matmul: inner sizes differ: {} @ {}", a.str(), b.str());
  const bool shared_b = b.ndim() == 2;
  if (!shared_b)
    GTA_CHECK(a.ndim() == b.ndim() && std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin()),
              "matmul: batch dimensions differ: {} @ {}", a.str(), b.str());
  const int64_t batch = a.numel() / std::max<int64_t>(m * k, 1);
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
