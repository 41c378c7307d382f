// gta golden-check FILE...: forward + backward against golden vectors in f64 and f32.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "nn/golden.h"

namespace gta::cli {

namespace {

// f64 must match the float64 reference to rounding; f32 to single-precision accumulation.
constexpr double kTolF64 = 1e-9, kTolF32 = 1e-4;

void run_golden_check(const std::vector<std::string>& files) {
  int failures = 0;
  std::printf("%-40s %-5s %-4s %12s %12s %12s  %s\n", "file", "type", "prec", "logits", "loss", "grads", "result");
  for (const std::string& path : files) {
    for (DType dt : {DType::f64, DType::f32}) {
      nn::GoldenReport r = nn::check_golden(path, dt);
      const double tol = dt == DType::f64 ? kTolF64 : kTolF32;
      const bool ok = r.max_rel_err() <= tol;
      failures += !ok;
      std::printf("%-40s %-5s %-4s %12.3e %12.3e %12.3e  %s", path.c_str(), r.attention_type.c_str(),
                  dtype_name(dt), r.groups[0].max_rel_err, r.groups[1].max_rel_err, r.groups[2].max_rel_err,
                  ok ? "ok" : "FAIL");
      if (!ok) std::printf(" (tolerance %.0e; worst gradient %s)", tol, r.groups[2].worst.c_str());
      std::printf("\n");
      if (dt == DType::f64 && r.kv_elems_expected >= 0 && r.kv_elems_expected != r.kv_elems_model) {
        std::printf("%-40s KV cache: file says %lld elems per token per layer, model has %lld  FAIL\n", path.c_str(),
                    static_cast<long long>(r.kv_elems_expected), static_cast<long long>(r.kv_elems_model));
        ++failures;
      }
    }
  }
  GTA_CHECK(failures == 0, "{} golden check(s) failed", failures);
}

}  // namespace

void register_golden_check(CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("golden-check", "Check forward/backward against golden-vector files (f64 and f32)");
  cmd->add_option("files", *files, "golden .safetensors files")->required()->check(CLI::ExistingFile);
  cmd->callback([files] { run_golden_check(*files); });
}

}  // namespace gta::cli
