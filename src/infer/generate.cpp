#include "infer/generate.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "autograd/tape.h"
#include "core/error.h"
#include "infer/decode_step.h"

namespace gta::infer {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Device model_device(const nn::Model& model) {
  const auto& all = model.params().all();
  return all.empty() ? Device::cpu() : all.front().second.device();
}

// ln softmax(row b of logits [B, V])[next[b]] for each b (log-sum-exp in f64).
std::vector<double> token_logprobs(const Tensor& logits, const std::vector<int32_t>& next) {
  const std::vector<double> l = logits.to_doubles();
  const size_t V = static_cast<size_t>(logits.size(1));
  std::vector<double> out(next.size());
  for (size_t b = 0; b < next.size(); ++b) {
    const double* p = l.data() + b * V;
    const double mx = *std::max_element(p, p + V);
    double z = 0;
    for (size_t v = 0; v < V; ++v) z += std::exp(p[v] - mx);
    out[b] = p[next[b]] - mx - std::log(z);
  }
  return out;
}

// The logits of the last position of logits [B, T, V] as [B, V].
Tensor last_position(const Tensor& logits) {
  const int64_t T = logits.size(1);
  return logits.slice(1, T - 1, T).reshape({logits.size(0), logits.size(2)});
}

}  // namespace

nlohmann::json GenerateStats::to_json() const {
  return {{"batch", batch},
          {"prompt_len", prompt_len},
          {"prefill_tokens", prefill_tokens},
          {"prefill_seconds", prefill_seconds},
          {"prefill_tokens_per_s", prefill_tokens_per_s()},
          {"decode_tokens", decode_tokens},
          {"decode_seconds", decode_seconds},
          {"decode_tokens_per_s", decode_tokens_per_s()},
          {"kv_cache_bytes", kv_cache_bytes}};
}

Tensor prefill(const nn::Model& model, const Tensor& tokens, nn::KVCache& cache, int64_t chunk) {
  GTA_CHECK(tokens.ndim() == 2 && tokens.size(1) >= 1, "prefill: expected tokens [B, T] with T >= 1, got {}",
            tokens.str());
  GTA_CHECK(chunk >= 0, "prefill: chunk must be >= 0, got {}", chunk);
  autograd::NoGradGuard no_grad;
  const int64_t T = tokens.size(1);
  if (chunk == 0) chunk = T;
  Tensor last;
  for (int64_t s = 0; s < T; s += chunk) {
    Tensor part = tokens.slice(1, s, std::min(T, s + chunk)).contiguous();
    last = last_position(model.forward(part, &cache));
  }
  return last;
}

GenerateResult generate(const nn::Model& model, const std::vector<std::vector<int32_t>>& prompts,
                        const GenerateOptions& opt) {
  opt.sampling.validate();
  GTA_CHECK(!prompts.empty(), "generate: no prompts");
  GTA_CHECK(opt.max_new_tokens >= 0, "max-new-tokens must be >= 0, got {}", opt.max_new_tokens);
  const int64_t B = static_cast<int64_t>(prompts.size());
  const int64_t P = static_cast<int64_t>(prompts[0].size());
  const int64_t V = model.config().vocab_size;
  GTA_CHECK(P >= 1, "generate: the prompt is empty (it must encode to at least one token)");
  std::vector<int32_t> flat;
  flat.reserve(static_cast<size_t>(B * P));
  for (int64_t b = 0; b < B; ++b) {
    GTA_CHECK(static_cast<int64_t>(prompts[b].size()) == P,
              "generate: prompts of one batch must have equal lengths (prompt 0 has {} tokens, prompt {} has {})", P,
              b, prompts[b].size());
    for (int32_t t : prompts[b]) {
      GTA_CHECK(t >= 0 && t < V, "generate: prompt token {} is outside the model vocabulary [0, {})", t, V);
      flat.push_back(t);
    }
  }

  autograd::NoGradGuard no_grad;
  const Device dev = model_device(model);
  GenerateResult res;
  GenerateStats& st = res.stats;
  st.batch = B, st.prompt_len = P;
  res.tokens.assign(static_cast<size_t>(B), {});
  if (opt.logprobs) res.logprobs.assign(static_cast<size_t>(B), {});
  std::vector<Rng> rngs;
  for (int64_t b = 0; b < B; ++b) {
    uint64_t x = opt.seed + 0x632be59bd9b4e019ULL * static_cast<uint64_t>(b);
    rngs.emplace_back(splitmix64(x));
  }

  GTA_CHECK(opt.context >= 0, "generate: context must be >= 0, got {}", opt.context);
  // Positions past the trained context were never seen in training (RoPE extrapolates poorly),
  // so such a request is refused rather than answered with degraded text.
  GTA_CHECK(opt.context <= 0 || P + opt.max_new_tokens <= opt.context,
            "generate: {} prompt tokens + {} new tokens = {} exceed the model's context of {} tokens (the sequence "
            "length it was trained with); shorten the prompt or lower --max-new-tokens to at most {}",
            P, opt.max_new_tokens, P + opt.max_new_tokens, opt.context, std::max<int64_t>(opt.context - P, 0));
  // The cache grows as tokens arrive (it starts with room for the prompt and a few hundred more)
  // up to the prompt and the new tokens, which fit in the context; a request whose full cache
  // could never fit in this machine's memory is refused up front.
  const int64_t max_len = P + std::max<int64_t>(opt.max_new_tokens, 1);
  const double need = static_cast<double>(model.make_cache(B, 1).bytes()) * static_cast<double>(max_len);
  const double have = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  GTA_CHECK(need <= have,
            "generate: {} samples of {} prompt + {} new tokens would need a KV cache of {:.0f} bytes ({:.1f} GiB), "
            "more than this machine's {:.0f} bytes of memory; lower --max-new-tokens or --num-samples",
            B, P, opt.max_new_tokens, need, need / (1 << 30), have);
  nn::KVCache cache = model.make_cache(B, max_len, P + 256);

  auto t0 = Clock::now();
  Tensor logits = prefill(model, Tensor::from_vector(flat, {B, P}).to(dev), cache, opt.prefill_chunk);
  if (opt.max_new_tokens > 0) logits.to_doubles();  // prefill timing includes finishing the work
  st.prefill_seconds = seconds_since(t0);
  st.prefill_tokens = B * P;

  t0 = Clock::now();
  DecodeStep decode(model, cache);
  std::vector<bool> done(static_cast<size_t>(B), false);
  for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
    std::vector<int32_t> next = sample_rows(logits, opt.sampling, rngs);
    const std::vector<double> lp = opt.logprobs ? token_logprobs(logits, next) : std::vector<double>();
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (!done[b]) {
        res.tokens[b].push_back(next[b]);
        if (opt.logprobs) res.logprobs[b].push_back(lp[b]);
        if (next[b] == opt.eos_id || static_cast<int64_t>(res.tokens[b].size()) >= opt.max_new_tokens) done[b] = true;
      }
      all_done = all_done && done[b];
    }
    if (all_done) break;
    logits = decode.run(Tensor::from_vector(next, {B, 1}).to(dev));
    st.decode_tokens += B;
  }
  st.decode_seconds = seconds_since(t0);
  st.kv_cache_bytes = cache.bytes();
  return res;
}

}  // namespace gta::infer
