// gta bench attention: causal attention forward and forward+backward times on the GPU (bf16,
// ops::attention, so the tensor-core kernels of kernels/flash_attention.cu; GTA_ATTENTION=ref
// times the reference kernels instead) for the shapes the model configs use, at batch B and each
// sequence length T (S = T). Timing: one warm-up call, then 5 trials of `reps` calls between CUDA
// events on gta's stream; the median per call is reported. Useful FLOPs count only the causal half:
// fwd 2 B n_q T^2/2 (d_qk + d_v), fwd+bwd 3.5x that (docs/kernels.md, "Useful FLOPs"). bench/attention_compare.py
// puts the numbers beside PyTorch SDPA.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/tape.h"
#include "cli/commands.h"
#include "cli/validators.h"
#include "core/cuda_runtime.h"
#include "core/device.h"
#include "core/error.h"
#include "core/rng.h"
#include "ops/ops.h"

namespace gta::cli {

namespace {

struct AttnShape {
  const char* name;
  int64_t nq, nk, nv, dqk, dv;
};

constexpr AttnShape kShapes[] = {{"MHA 12x64", 12, 12, 12, 64, 64},
                                 {"GQA-S", 12, 4, 4, 64, 64},
                                 {"GTA-S", 4, 1, 1, 64, 96},
                                 {"MLA-S", 12, 12, 12, 96, 64},
                                 {"GVA-S", 4, 1, 4, 64, 192}};

struct BenchAttentionOptions {
  int64_t batch = 8;
  std::vector<int64_t> seq_lens = {1024, 2048, 4096, 8192};
  std::vector<std::string> shapes;  // empty: all
  int trials = 5;
  bool json = false;
};

// uniform(-1, 1) values rounded to bf16, on the GPU (as bench/attention_compare.py draws them).
Tensor random_bf16(Rng& rng, const Shape& shape, const Device& dev) {
  std::vector<float> x(static_cast<size_t>(shape_numel(shape)));
  for (float& e : x) e = static_cast<float>(rng.uniform() * 2 - 1);
  return Tensor::from_vector(x, shape).to(DType::bf16).to(dev);
}

// Median over trials of the per-call time of f, with reps calls per trial sized to ~20 ms.
template <typename F>
double time_ms(F&& f, int trials) {
  f();
  cuda::synchronize();
  float first;
  {
    cuda::StreamTimer t;
    t.start();
    f();
    t.stop();
    first = t.elapsed_ms();
  }
  const int reps = std::clamp(static_cast<int>(20.0 / std::max(first, 1e-3f)), 1, 100);
  std::vector<float> ms;
  for (int tr = 0; tr < trials; ++tr) {
    cuda::StreamTimer t;
    t.start();
    for (int r = 0; r < reps; ++r) f();
    t.stop();
    ms.push_back(t.elapsed_ms() / reps);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void run_bench_attention(const BenchAttentionOptions& o) {
  GTA_CHECK(cuda_available(), "bench attention: needs a CUDA device (none visible, or a CPU-only build)");
  const Device dev = Device::cuda(0);
  const char* env = std::getenv("GTA_ATTENTION");
  const std::string kernels = env && std::string(env) == "ref" ? "ref" : "flash";
  Rng rng(1);
  for (const AttnShape& s : kShapes) {
    if (!o.shapes.empty() && std::find(o.shapes.begin(), o.shapes.end(), s.name) == o.shapes.end()) continue;
    for (int64_t T : o.seq_lens) {
      const int64_t B = o.batch;
      auto leaf = [&](const Shape& sh) {
        Tensor t = random_bf16(rng, sh, dev).detach();
        t.set_requires_grad(true);
        return t;
      };
      Tensor q = leaf({B, T, s.nq, s.dqk}), k = leaf({B, T, s.nk, s.dqk}), v = leaf({B, T, s.nv, s.dv});
      Tensor g = random_bf16(rng, {B, T, s.nq, s.dv}, dev);
      const double scale = 1.0 / std::sqrt(static_cast<double>(s.dqk));
      auto fwd = [&] {
        autograd::NoGradGuard ng;
        ops::attention(q, k, v, scale);
      };
      auto fwd_bwd = [&] {
        for (Tensor* t : {&q, &k, &v}) t->zero_grad();
        ops::attention(q, k, v, scale).backward(g);
      };
      const double f_ms = time_ms(fwd, o.trials), fb_ms = time_ms(fwd_bwd, o.trials);
      const double flop_f = 2.0 * B * s.nq * static_cast<double>(T) * T / 2 * (s.dqk + s.dv);
      const double tf_f = flop_f / f_ms * 1e-9, tf_fb = 3.5 * flop_f / fb_ms * 1e-9;
      if (o.json) {
        nlohmann::json j = {{"shape", s.name}, {"kernels", kernels}, {"B", B},        {"T", T},
                            {"nq", s.nq},      {"nk", s.nk},         {"nv", s.nv},    {"dqk", s.dqk},
                            {"dv", s.dv},      {"fwd_ms", f_ms},     {"fwd_bwd_ms", fb_ms},
                            {"fwd_tflops", tf_f}, {"fwd_bwd_tflops", tf_fb}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("attention %s (%s) bf16 B%lld T%lld: fwd %.3f ms (%.1f TFLOP/s), fwd+bwd %.3f ms (%.1f TFLOP/s)\n",
                    s.name, kernels.c_str(), static_cast<long long>(B), static_cast<long long>(T), f_ms, tf_f, fb_ms,
                    tf_fb);
      }
      std::fflush(stdout);
    }
  }
}

}  // namespace

void register_bench_attention(CLI::App* bench) {
  auto o = std::make_shared<BenchAttentionOptions>();
  CLI::App* at = bench->add_subcommand(
      "attention", "Causal attention fwd and fwd+bwd on the GPU (bf16) for MHA, GQA-S, GTA-S, MLA-S, GVA-S shapes");
  at->add_option("--batch", o->batch, "sequences per call")->check(kPositive);
  at->add_option("--seq-len", o->seq_lens, "sequence lengths (T = S), one or more")->check(kPositive);
  at->add_option("--shape", o->shapes, "only these shapes (\"MHA 12x64\", GQA-S, GTA-S, MLA-S, GVA-S)");
  at->add_option("--trials", o->trials, "timed trials (the median is reported)")->check(kPositive);
  at->add_flag("--json", o->json, "print one JSON object per line");
  at->callback([o] { run_bench_attention(*o); });
}

}  // namespace gta::cli
