// gta golden-check FILE... [--device cuda]: forward + backward against golden vectors, in f64 and
// f32 on the CPU, in f32 on a GPU (the GPU's f32 path is meant to match the CPU's).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "nn/golden.h"

namespace gta::cli {

namespace {

// f64 must match the float64 reference to rounding; f32 to single-precision accumulation.
constexpr double kTolF64 = 1e-9, kTolF32 = 1e-4;

void run_golden_check(const std::vector<std::string>& files, const std::string& device_name) {
  const Device device = resolve_device(device_name, 0, "--device");
  const std::vector<DType> dtypes =
      device.is_cpu() ? std::vector<DType>{DType::f64, DType::f32} : std::vector<DType>{DType::f32};
  int failures = 0;
  std::printf("device %s\n%-40s %-5s %-4s %12s %12s %12s  %s\n", device.str().c_str(), "file", "type", "prec",
              "logits", "loss", "grads", "result");
  for (const std::string& path : files) {
    for (DType dt : dtypes) {
      nn::GoldenReport r = nn::check_golden(path, dt, device);
      const double tol = dt == DType::f64 ? kTolF64 : kTolF32;
      const bool ok = r.max_rel_err() <= tol;
      failures += !ok;
      std::printf("%-40s %-5s %-4s %12.3e %12.3e %12.3e  %s", path.c_str(), r.attention_type.c_str(),
                  dtype_name(dt), r.groups[0].max_rel_err, r.groups[1].max_rel_err, r.groups[2].max_rel_err,
                  ok ? "ok" : "FAIL");
      if (!ok) std::printf(" (tolerance %.0e; worst gradient %s)", tol, r.groups[2].worst.c_str());
      std::printf("\n");
      if (dt == dtypes.front() && r.kv_elems_expected >= 0 && r.kv_elems_expected != r.kv_elems_model) {
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
  auto device = std::make_shared<std::string>("cpu");
  CLI::App* cmd = app.add_subcommand("golden-check", "Check forward/backward against golden-vector files (f64 and f32)");
  cmd->add_option("files", *files, "golden .safetensors files")->required()->check(CLI::ExistingFile);
  cmd->add_option("--device", *device, "cpu (f64 and f32), cuda or cuda:N (f32)");
  cmd->callback([files, device] { run_golden_check(*files, *device); });
}

}  // namespace gta::cli
