// gta analyze CHECKPOINT --data SHARDS --out DIR [--windows N] [--seq-len T] [--device D]
//   [--no-plots]
// The paper's motivating observations on a trained model (src/analysis/analyze.h): per layer,
// the similarity of the attention maps and the singular-value spectrum of the cached values.
// Writes DIR/analysis.json, then draws DIR/map_similarity.png and DIR/value_spectrum.png with
// scripts/plot_analysis.py (python3 + matplotlib). The forward runs on --device; the statistics
// are computed on the CPU in f64.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "analysis/analyze.h"
#include "cli/commands.h"
#include "cli/python_script.h"
#include "core/error.h"
#include "core/sha256.h"
#include "data/loader.h"
#include "infer/tokenizer_lookup.h"
#include "train/checkpoint.h"

namespace gta::cli {

namespace {

namespace fs = std::filesystem;

struct AnalyzeCliOptions {
  std::string device = "auto";
  std::string checkpoint, out;
  std::vector<std::string> data;
  analysis::AnalyzeOptions analyze;
  bool no_plots = false;
};

void print_summary(const nlohmann::json& j) {
  std::printf("%s attention, %lld windows of %lld tokens\n", j["attention"].get<std::string>().c_str(),
              j["windows"].get<long long>(), j["seq_len"].get<long long>());
  std::printf("layer  maps  map cosine  map JS (bits)  value cache        n90   n99  rank  centered n90  n99\n");
  for (const auto& l : j["layers"]) {
    const auto& v = l["value_cache"];
    const auto& c = v["centered"];
    auto num = [](const nlohmann::json& x) { return x.is_number() ? x.get<double>() : std::nan(""); };
    std::printf("%5d  %4lld  %10.4f  %13.4f  %-6s %5lld cols  %4lld  %4lld  %4lld  %12lld  %3lld\n",
                l["layer"].get<int>(), l["maps"].get<long long>(), num(l["map_cosine_offdiag_mean"]),
                num(l["map_js_bits_offdiag_mean"]), v["entry"].get<std::string>().c_str(),
                v["columns"].get<long long>(), v["n90"].get<long long>(), v["n99"].get<long long>(),
                v["rank"].get<long long>(), c["n90"].get<long long>(), c["n99"].get<long long>());
  }
}

void run_analyze(const AnalyzeCliOptions& o) {
  o.analyze.validate();
  data::expand_shard_paths(o.data);  // a missing shard fails before the (slower) weight load
  const std::string weights = train::resolve_model_weights(o.checkpoint).source;
  std::unique_ptr<nn::Model> model = train::load_model(weights);
  model->params().move_to(resolve_device(o.device, 0, "--device"));
  analysis::AnalyzeOptions ao = o.analyze;
  const std::string tok = infer::find_tokenizer(weights);
  if (!tok.empty()) ao.tokenizer_sha256 = sha256_file(tok);
  nlohmann::json j = analysis::analyze(*model, o.data, ao);
  j["checkpoint"] = weights;

  std::error_code ec;
  fs::create_directories(o.out, ec);
  GTA_CHECK(!ec, "--out {}: cannot create the directory ({})", o.out, ec.message());
  const std::string json_path = (fs::path(o.out) / "analysis.json").string();
  {
    std::ofstream f(json_path);
    f << j.dump(1) << "\n";
    GTA_CHECK(f.good(), "{}: cannot write", json_path);
  }
  print_summary(j);
  if (j["windows"].get<int64_t>() < o.analyze.windows)
    std::printf("note: --windows %lld asked, the shards hold only %lld windows of %lld tokens\n",
                static_cast<long long>(o.analyze.windows), j["windows"].get<long long>(),
                static_cast<long long>(o.analyze.seq_len));
  std::printf("wrote %s (%.1f s)\n", json_path.c_str(), j["seconds"].get<double>());
  if (o.no_plots) {
    std::printf("plots: python3 %s %s\n", find_script("plot_analysis.py").c_str(), json_path.c_str());
    return;
  }
  std::fflush(stdout);  // our lines first, then the script's
  run_python_script("plot_analysis.py", {json_path}, {"matplotlib"});
}

}  // namespace

void register_analyze(CLI::App& app) {
  auto o = std::make_shared<AnalyzeCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "analyze", "Attention-map similarity and value-cache spectra of a checkpoint (JSON + PNG plots)");
  cmd->add_option("checkpoint", o->checkpoint,
                  "Checkpoint directory, run directory (newest checkpoint) or .safetensors file")
      ->required();
  cmd->add_option("--data", o->data, "Validation shard files, directories or globs (windows read in order)")
      ->required()
      ->expected(1, -1);
  cmd->add_option("--out", o->out, "Directory for analysis.json and the PNGs (created)")->required();
  cmd->add_option("--windows", o->analyze.windows, "Windows of T tokens to analyse")->capture_default_str();
  cmd->add_option("--seq-len", o->analyze.seq_len, "Tokens per window T")->capture_default_str();
  cmd->add_option("--device", o->device, "Where the forward runs: cpu, cuda, cuda:N or auto");
  cmd->add_flag("--no-plots", o->no_plots, "Write analysis.json only; print the command that draws the plots");
  cmd->callback([o] { run_analyze(*o); });
}

}  // namespace gta::cli
