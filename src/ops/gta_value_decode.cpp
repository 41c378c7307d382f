#include "ops/gta_value_decode.h"

#include "autograd/tape.h"
#include "core/error.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/gta_value_decode.h"
#endif

namespace gta::ops {

bool gta_value_decode_supported(const Tensor& o, const Tensor& wb, const Tensor& g) {
#ifdef GTA_WITH_CUDA
  if (o.ndim() != 3 || wb.ndim() != 2 || g.ndim() != 2) return false;
  const int64_t B = o.size(0), nq = o.size(1), dl = o.size(2);
  if (wb.size(1) != nq * dl || wb.size(0) % dl != 0 || g.size(0) != B || g.size(1) != nq * wb.size(0)) return false;
  for (const Tensor* t : {&o, &wb, &g})
    if (!t->device().is_cuda() || t->device() != o.device() || t->dtype() != DType::bf16) return false;
  return kernels::gta_value_decode_supported(dl, wb.size(0) / dl);
#else
  (void)o, (void)wb, (void)g;
  return false;
#endif
}

Tensor gta_value_decode(const Tensor& o, const Tensor& wb, const Tensor& g) {
  GTA_CHECK(gta_value_decode_supported(o, wb, g),
            "gta_value_decode: the fused kernel does not take o {}, v_b_proj {} and gate {} (CUDA, bf16, "
            "o [B, n_q, d_l], v_b_proj [e d_l, n_q d_l], gate [B, n_q e d_l])",
            o.str(), wb.str(), g.str());
  GTA_CHECK(!autograd::grad_enabled() || !(o.requires_grad() || wb.requires_grad() || g.requires_grad()),
            "gta_value_decode: inference only (no gradients)");
#ifdef GTA_WITH_CUDA
  cuda::DeviceGuard guard(o.device().index);
  const Tensor oc = o.contiguous(), wc = wb.contiguous(), gc = g.contiguous();
  Tensor out = Tensor::empty({o.size(0), g.size(1)}, DType::bf16, o.device());
  kernels::GtaValueDecodeArgs a;
  a.B = o.size(0), a.nq = o.size(1), a.dl = o.size(2), a.e = wb.size(0) / o.size(2);
  a.o = oc.raw_data(), a.wb = wc.raw_data(), a.g = gc.raw_data(), a.out = out.raw_data();
  kernels::gta_value_decode(a);
  return out;
#else
  return Tensor();
#endif
}

}  // namespace gta::ops
