// gta info CONFIG.yaml [--seq-len T] [--vocab-size V] [--json]: sizes and costs of a model.
#include <cstdio>
#include <fmt/format.h>

#include "cli/commands.h"
#include "config/config.h"
#include "core/error.h"
#include "nn/model_stats.h"

namespace gta::cli {

namespace {

std::string human(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}B", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}K", v / 1e3);
  return fmt::format("{:.0f}", v);
}

struct InfoOptions {
  std::string config;
  int64_t seq_len = 2048;
  int64_t vocab = 32000;
  bool json = false;
};

void run_info(const InfoOptions& o) {
  GTA_CHECK(o.seq_len >= 1, "--seq-len must be >= 1, got {}", o.seq_len);
  GTA_CHECK(o.vocab >= 1, "--vocab-size must be >= 1, got {}", o.vocab);
  config::ModelConfig cfg = config::load_model_config(o.config);
  const bool vocab_from_flag = cfg.vocab_size == 0;
  if (vocab_from_flag) cfg.vocab_size = o.vocab;
  nn::ModelStats s = nn::model_stats(cfg, o.seq_len);
  if (o.json) {
    nlohmann::json j = s.to_json();
    j["config"] = config::to_json(cfg);
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  const auto& L = s.layer;
  std::printf("%s: %s attention, d_model %d, %d layers, d_ff %d, %d heads\n", o.config.c_str(),
              cfg.attention.type.c_str(), cfg.d_model, cfg.n_layers, cfg.d_ff, cfg.n_heads);
  std::printf("vocabulary            %lld%s\n", static_cast<long long>(cfg.vocab_size),
              vocab_from_flag ? " (config leaves it to the tokenizer; --vocab-size)" : "");
  std::printf("parameters            %s total, %s non-embedding (%lld)\n", human(s.total_params).c_str(),
              human(s.non_embedding_params).c_str(), static_cast<long long>(s.total_params));
  std::printf("  per layer           attention %s, MLP %s, norms %lld\n", human(L.attn_params).c_str(),
              human(L.mlp_params).c_str(), static_cast<long long>(L.norm_params));
  std::printf("KV cache per token    %lld elems per layer, %lld elems total, %s bytes (bf16)\n",
              static_cast<long long>(L.kv_elems_per_token), static_cast<long long>(s.kv_elems_per_token),
              human(static_cast<double>(s.kv_bytes_per_token_bf16)).c_str());
  std::printf("attention work        %.0f multiply-adds per token pair per layer (q.k %.0f + values %.0f)\n",
              L.qk_madds_per_pair + L.v_madds_per_pair, L.qk_madds_per_pair, L.v_madds_per_pair);
  std::printf("  at T=%lld            %s multiply-adds per token per layer, %s total\n",
              static_cast<long long>(o.seq_len), human(L.attn_madds_per_token).c_str(),
              human(s.attn_madds_per_token).c_str());
  std::printf("training FLOPs/token  %s (6 x GEMM params + 6 x attention multiply-adds)\n",
              human(s.train_flops_per_token).c_str());
}

}  // namespace

void register_info(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "Parameters, KV-cache size and attention/training FLOPs of a model config");
  cmd->add_option("config", o->config, "YAML file with a model: section")->required()->check(CLI::ExistingFile);
  cmd->add_option("--seq-len", o->seq_len, "context length T for the attention cost");
  cmd->add_option("--vocab-size", o->vocab, "vocabulary when the config leaves it to the tokenizer");
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->callback([o] { run_info(*o); });
}

}  // namespace gta::cli
