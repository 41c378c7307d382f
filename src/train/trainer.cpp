#include "train/trainer.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

#include <fmt/ranges.h>

#include "core/cuda_runtime.h"
#include "core/error.h"
#include "core/sha256.h"
#include "core/rng.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "distributed/communicator.h"
#include "distributed/data_parallel.h"
#include "infer/evaluate.h"
#include "infer/tokenizer_lookup.h"
#include "nn/model.h"
#include "nn/model_stats.h"
#include "ops/ops.h"
#include "optim/adamw.h"
#include "optim/schedule.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/run_dir.h"

namespace gta::train {

namespace fs = std::filesystem;

namespace {

std::atomic<int> g_stop{0};

extern "C" void on_stop_signal(int sig) { g_stop.store(sig); }

// The CPU backend computes in f32 and f64, the CUDA backend in f32 and bf16 (bf16 parameters
// with fp32 master weights in AdamW: mixed precision).
DType resolve_dtype(const std::string& name, Device device) {
  const DType dtype = dtype_from_name(name);
  GTA_CHECK(device.is_cuda() || dtype != DType::bf16,
            "train.dtype bf16 needs a GPU (train.device resolved to cpu); use f32 on the CPU");
  GTA_CHECK(device.is_cpu() || dtype != DType::f64,
            "train.dtype f64 runs on the CPU only (train.device resolved to {}); use f32 or bf16 on the GPU",
            device.str());
  return dtype;
}

// The tokenizer fixes the vocabulary: the model's must hold every id, and the shards must
// have been written with this tokenizer.
void check_vocab_and_tokenizer(config::RunConfig& cfg, const data::Tokenizer& tok, const data::DataLoader& loader) {
  const int64_t tv = tok.vocab_size();
  if (cfg.model.vocab_size == 0) cfg.model.vocab_size = tv;
  GTA_CHECK(cfg.model.vocab_size >= tv,
            "model.vocab_size {} is smaller than the tokenizer's vocabulary {} ({}); set model.vocab_size: 0 to "
            "take it from the tokenizer",
            cfg.model.vocab_size, tv, tok.path());
  GTA_CHECK(loader.tokenizer_sha256().empty() || loader.tokenizer_sha256() == tok.checksum(),
            "the training shards ({}) were written with another tokenizer (SHA-256 {}) than data.tokenizer {} ({})",
            cfg.data.train, loader.tokenizer_sha256(), tok.path(), tok.checksum());
  GTA_CHECK(loader.vocab_size() <= static_cast<uint64_t>(cfg.model.vocab_size),
            "the training shards hold token ids up to vocabulary {} but model.vocab_size is {}", loader.vocab_size(),
            cfg.model.vocab_size);
}

// "a.b: X in the checkpoint, Y in the config" for every key where two config JSONs differ
// (JSON-patch paths of nlohmann::json::diff, written as dotted keys under `prefix`).
std::vector<std::string> config_differences(const nlohmann::json& saved, const nlohmann::json& now,
                                            const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& op : nlohmann::json::diff(saved, now)) {
    const nlohmann::json::json_pointer ptr(op["path"].get<std::string>());
    std::string key = prefix;
    for (const char c : ptr.to_string()) key += c == '/' ? '.' : c;
    const std::string was = saved.contains(ptr) ? saved[ptr].dump() : "absent";
    const std::string is = now.contains(ptr) ? now[ptr].dump() : "absent";
    out.push_back(fmt::format("{}: {} in the checkpoint, {} in the config", key, was, is));
  }
  return out;
}

// --resume continues the run exactly: the same model, and the same data order and random
// stream, so train.seed and data.mode cannot change (the loader state is only valid for them).
void check_resumable(const Checkpoint& ckpt, const config::RunConfig& cfg) {
  const auto model_diff = config_differences(config::to_json(ckpt.model_config), config::to_json(cfg.model), "model");
  GTA_CHECK(model_diff.empty(), "--resume: {} holds a different model than the config ({}); use another train.out_dir",
            ckpt.dir, fmt::join(model_diff, "; "));
  const nlohmann::json now = config::to_json(cfg);
  std::vector<std::string> fixed;
  for (const auto& [key, path] : {std::pair{"train.seed", "/train/seed"}, std::pair{"data.mode", "/data/mode"}}) {
    const nlohmann::json::json_pointer ptr(path);
    if (!ckpt.trainer.config.contains(ptr) || ckpt.trainer.config[ptr] == now[ptr]) continue;
    fixed.push_back(fmt::format("{}: {} in the checkpoint, {} in the config", key, ckpt.trainer.config[ptr].dump(),
                                now[ptr].dump()));
  }
  GTA_CHECK(fixed.empty(),
            "--resume: train.seed and data.mode cannot change for a run in progress ({}; from {}/trainer.json): set "
            "them back to resume, or start a new run in another train.out_dir",
            fmt::join(fixed, "; "), ckpt.dir);
}

// train.init_from: the weights of another run (or a `gta import`) replace the random
// initialisation. They must be of the model the config describes (when they record their
// config) and, when a tokenizer was recorded with them, of data.tokenizer's vocabulary.
void init_from_weights(nn::Params& params, const config::RunConfig& cfg, const data::Tokenizer& tok, bool verify) {
  const std::string& path = cfg.train.init_from;
  try {
    const ModelWeights w = load_model_weights(path, verify);
    if (w.config) {
      const auto diff = config_differences(config::to_json(*w.config), config::to_json(cfg.model), "model");
      GTA_CHECK(diff.empty(), "{} holds a different model than the config ({})", w.source, fmt::join(diff, "; "));
    }
    const std::string wtok = infer::find_tokenizer(w.source);
    GTA_CHECK(wtok.empty() || sha256_file(wtok) == tok.checksum(),
              "{} was trained with tokenizer {}, not data.tokenizer {} (SHA-256 {} against {})", w.source, wtok,
              tok.path(), sha256_file(wtok).substr(0, 12), tok.checksum().substr(0, 12));
    params.load(w.tensors, w.source);
  } catch (const Error& e) {
    fail("train.init_from: {}", e.what());
  }
}

// Every input the run will read, opened and checked before step 1, so that a bad path is
// reported before any training is lost (data.train and data.tokenizer are open already).
void validate_inputs_up_front(const config::RunConfig& cfg, const data::Tokenizer& tok) {
  if (!cfg.train.init_from.empty()) {
    try {
      resolve_model_weights(cfg.train.init_from);
    } catch (const Error& e) {
      fail("train.init_from: {}", e.what());
    }
  }
  if (cfg.data.val.empty()) return;
  infer::EvalOptions eo;
  eo.batch_size = cfg.train.batch_size;
  eo.seq_len = cfg.train.seq_len;
  eo.tokenizer_sha256 = tok.checksum();
  try {
    infer::check_eval_data({cfg.data.val}, cfg.model.vocab_size, eo);
  } catch (const Error& e) {
    fail("data.val: {}", e.what());
  }
}

}  // namespace

void install_stop_signal_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

int stop_requested() { return g_stop.load(); }

namespace {

TrainSummary train_with(const TrainOptions& opts, dist::Communicator* comm, Device device) {
  config::RunConfig cfg = opts.config;
  const auto& tc = cfg.train;
  const DType dtype = resolve_dtype(tc.dtype, device);
  GTA_CHECK(!cfg.data.train.empty(), "{}: data.train is not set (shard file, directory or glob)", opts.config_source);
  GTA_CHECK(!cfg.data.tokenizer.empty(), "{}: data.tokenizer is not set (the SentencePiece model of the shards)",
            opts.config_source);
  const int world = comm->world_size(), rank = comm->rank();
  const bool lead = rank == 0;  // rank 0 logs, evaluates and writes checkpoints

  data::Tokenizer tok = data::Tokenizer::load(cfg.data.tokenizer);
  data::LoaderOptions lo;
  lo.seq_len = tc.seq_len;
  lo.batch_size = tc.batch_size;
  lo.rank = rank;
  lo.world_size = world;
  lo.seed = tc.seed;
  lo.mode = data::parse_sample_mode(cfg.data.mode);
  lo.vocab_limit = cfg.model.vocab_size > 0 ? cfg.model.vocab_size : tok.vocab_size();
  data::DataLoader loader({cfg.data.train}, lo);
  check_vocab_and_tokenizer(cfg, tok, loader);
  const int64_t accum = tc.grad_accum_steps(world);
  const int64_t tokens_per_step = tc.global_tokens(world);
  const int64_t schedule_steps = cfg.optim.decay_steps > 0 ? cfg.optim.decay_steps : tc.steps;

  if (lead) validate_inputs_up_front(cfg, tok);

  // Rank 0 owns the run directory: one trainer at a time (held until the run ends), and a fresh
  // run never takes over an old one.
  std::optional<RunDirLock> lock;
  if (lead) {
    lock.emplace(tc.out_dir);
    if (!opts.resume) claim_fresh_run_dir(tc.out_dir, opts.overwrite);
  }

  // Resume: the newest complete checkpoint of out_dir, which must be of the same model.
  std::optional<Checkpoint> ckpt;
  TrainSummary summary;
  summary.lead = lead;
  if (opts.resume) {
    auto latest = latest_checkpoint(tc.out_dir);
    GTA_CHECK(latest.has_value(), "--resume: no checkpoint in {} (expected {}/step_*)", tc.out_dir,
              checkpoints_root(tc.out_dir));
    ckpt = load_checkpoint(*latest, opts.verify);
    check_resumable(*ckpt, cfg);
    if (ckpt->trainer.step >= tc.steps) {
      GTA_CHECK(ckpt->trainer.step == tc.steps,
                "--resume: {} is at step {}, past train.steps {}; raise train.steps to train further", ckpt->dir,
                ckpt->trainer.step, tc.steps);
      summary.already_finished = true;
      summary.steps_done = ckpt->trainer.step;
      summary.last_checkpoint = ckpt->dir;
      return summary;
    }
  }

  if (lead) {
    std::ofstream(fs::path(tc.out_dir) / "config.yaml") << config::to_yaml(cfg);
    std::ofstream(fs::path(tc.out_dir) / "tokenizer.model", std::ios::binary) << tok.model_bytes();
  }

  // Initialised on the CPU (the same draws whatever the device), then moved.
  nn::Model model(cfg.model, dtype, tc.seed);
  if (!opts.resume && !tc.init_from.empty()) init_from_weights(model.params(), cfg, tok, opts.verify);
  model.params().move_to(device);
  // Plain data parallelism averages gradients in buckets during backward; ZeRO-1 (dist.zero1,
  // several ranks) reduce-scatters them after it, and this rank's AdamW holds only the parameters
  // it owns.
  dist::DataParallelStep dp(*comm, model.params().all(), cfg.optim, cfg.dist.zero1, cfg.dist.bucket_mb);
  Rng rng(tc.seed ^ 0x5eedull);  // reserved for stochastic parts of training; checkpointed
  int64_t step = 0;
  double tokens_seen = 0;
  if (ckpt) {
    ckpt->optimizer = dp.local_state(ckpt->optimizer);
    restore_checkpoint(*ckpt, model.params(), dp.optimizer());
    try {
      loader.load_state(ckpt->trainer.loader);
    } catch (const Error& e) {
      fail("{}/trainer.json \"loader\": {}", ckpt->dir, e.what());
    }
    rng.set_state(ckpt->trainer.rng);
    step = ckpt->trainer.step;
    tokens_seen = ckpt->trainer.extra.value("tokens_seen", 0.0);
  }

  const nn::ModelStats stats = nn::model_stats(cfg.model, tc.seq_len);
  std::optional<MetricsLog> metrics;
  if (lead)
    metrics.emplace((fs::path(tc.out_dir) / "metrics.jsonl").string(), ckpt ? step : -1,
                    cfg.logging.tensorboard ? (fs::path(tc.out_dir) / "tb").string() : "");
  Progress progress(step, tc.steps, lead);
  progress.message(fmt::format("gta train: {} attention, {:.2f}M parameters, {} {}, {} tokens/step ({} x {} x {} accum x {} "
                               "ranks, {}), {} steps{}",
                               cfg.model.attention.type, model.params().count() / 1e6, device.str(),
                               dtype_name(dtype), tokens_per_step,
                               tc.batch_size, tc.seq_len, accum, world,
                               comm->name() + (dp.zero1() ? ", ZeRO-1" : ""), tc.steps,
                               ckpt                      ? fmt::format(", resuming from step {}", step)
                               : !tc.init_from.empty() ? fmt::format(", initialised from {}", tc.init_from)
                                                         : ""));
  if (lead && !ckpt)
    metrics->write({{"step", 0}, {"event", "start"}, {"config", config::to_json(cfg)},
                   {"params", model.params().count()}, {"train_flops_per_token", stats.train_flops_per_token}});

  auto save = [&](int64_t at_step) {
    // The full optimizer state; sharded, it is gathered to rank 0 (a collective: every rank joins).
    const optim::AdamWState optimizer = dp.full_state();
    if (!lead) return;
    TrainerState st;
    st.step = at_step;
    st.loader = loader.state();
    st.rng = rng.state();
    st.config = config::to_json(cfg);
    st.extra = {{"tokens_seen", tokens_seen}};
    summary.last_checkpoint = save_checkpoint(tc.out_dir, model, optimizer, st, cfg.checkpoint.keep);
    progress.message(fmt::format("checkpoint {}", summary.last_checkpoint));
  };
  // The other ranks wait for rank 0's own work here, within dist.rank0_timeout_s, instead of in
  // the next collective under dist.timeout_s (which would take a slow evaluation for a dead rank).
  auto wait_for_lead = [&](const std::string& what) {
    if (world > 1) comm->barrier_within(cfg.dist.rank0_timeout_s, what);
  };
  auto validate = [&](int64_t at_step) {
    if (cfg.data.val.empty() || !lead) return;
    infer::EvalOptions eo;
    eo.batch_size = tc.batch_size;
    eo.seq_len = tc.seq_len;
    eo.max_batches = cfg.eval.batches;
    eo.tokenizer_sha256 = tok.checksum();
    infer::EvalResult r = infer::evaluate(model, {cfg.data.val}, eo);
    summary.final_val_loss = r.loss;
    summary.final_val_bpb = r.bits_per_byte;
    metrics->write({{"step", at_step}, {"event", "eval"}, {"val_loss", r.loss}, {"val_ppl", r.perplexity},
                   {"val_bpb", std::isnan(r.bits_per_byte) ? nlohmann::json() : nlohmann::json(r.bits_per_byte)},
                   {"val_tokens", r.tokens}});
    progress.message(fmt::format("step {}: val loss {:.4f} | ppl {:.2f} | {}", at_step, r.loss, r.perplexity,
                                 infer::bits_per_byte_text(r.bits_per_byte)));
  };

  auto window_start = std::chrono::steady_clock::now();
  int64_t window_tokens = 0;
  while (step < tc.steps) {
    const double lr = optim::lr_at(cfg.optim, schedule_steps, step);
    model.params().zero_grad();
    std::vector<Tensor> losses;  // read after backward: reading one waits for the device
    for (int64_t micro = 0; micro < accum; ++micro) {
      data::Batch batch = loader.next_batch();
      Tensor tokens = Tensor::from_vector(batch.tokens, {batch.B, batch.T + 1}).to(device);
      Tensor loss = model.loss(tokens);
      losses.push_back(loss.detach());
      // Mean over the global batch: each micro-batch contributes 1/accum of its mean.
      dp.sync_next_backward(micro == accum - 1);  // communicate only after the last micro-batch
      (accum > 1 ? ops::scale(loss, 1.0 / static_cast<double>(accum)) : loss).backward();
    }
    dp.sync_grads();
    double loss_sum = 0;
    for (const Tensor& l : losses) loss_sum += l.item();
    const double train_loss = comm->sum(loss_sum) / static_cast<double>(accum * world);
    GTA_CHECK(std::isfinite(train_loss), "step {}: the training loss is {} (diverged); lower optim.lr or check the data",
              step + 1, train_loss);
    const double gnorm = dp.clip_grad_norm(cfg.optim.grad_clip);
    GTA_CHECK(std::isfinite(gnorm), "step {}: the gradient norm is {}; lower optim.lr", step + 1, gnorm);
    dp.update(lr);
    ++step;
    tokens_seen += static_cast<double>(tokens_per_step);
    window_tokens += tokens_per_step;
    summary.final_train_loss = train_loss;

    const bool last = step == tc.steps;
    if (step % tc.log_every == 0 || last || step == 1) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      const double tps = secs > 0 ? static_cast<double>(window_tokens) / secs : 0;
      if (lead) {
        nlohmann::json rec = {{"step", step}, {"event", "train"}, {"loss", train_loss}, {"lr", lr},
                              {"grad_norm", gnorm}, {"tokens", tokens_seen}, {"tokens_per_s", tps}};
        // The caching allocator's high-water mark since the process started (this rank's GPU).
        if (device.is_cuda())
          rec["peak_mem_gb"] = static_cast<double>(cuda::memory_stats(device.index).peak_allocated_bytes) / 1e9;
        // Model FLOPs utilisation: achieved model FLOP/s over the peak of all ranks' devices.
        if (cfg.logging.peak_tflops > 0)
          rec["mfu"] = tps * stats.train_flops_per_token / (cfg.logging.peak_tflops * 1e12 * world);
        metrics->write(rec);
      }
      progress.update(step, train_loss, lr, tps, gnorm, false);
      window_start = std::chrono::steady_clock::now();
      window_tokens = 0;
    }
    if ((cfg.eval.every > 0 && step % cfg.eval.every == 0) || last) {
      validate(step);
      wait_for_lead(fmt::format("rank 0's evaluation after step {}", step));
    }
    // Every rank stops after the same step when any of them was signalled.
    const int stop = world > 1 ? static_cast<int>(comm->max(stop_requested())) : stop_requested();
    if ((cfg.checkpoint.every > 0 && step % cfg.checkpoint.every == 0) || last || stop) {
      save(step);
      wait_for_lead(fmt::format("rank 0's checkpoint of step {}", step));
    }
    if (stop && !last) {
      progress.message(fmt::format("stopped by signal after step {}; resume with --resume", step));
      summary.stop_signal = stop;
      break;
    }
  }
  progress.finish();
  summary.steps_done = step;
  return summary;
}

}  // namespace

TrainSummary run_training(const TrainOptions& opts) {
  const dist::LaunchEnv env = dist::detect_launch_env();
  const Device device = resolve_device(opts.config.train.device, env.local_rank, "train.device");
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator(env, opts.config.dist.timeout_s, device);
  try {
    return train_with(opts, comm.get(), device);
  } catch (const std::exception& e) {
    // One rank failing alone would leave the others waiting in a collective: end them all.
    if (comm->world_size() > 1) comm->abort(e.what());
    throw;
  }
}

}  // namespace gta::train
