#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <type_traits>

#include "config/attention_types.h"
#include "config/tree.h"
#include "core/error.h"

namespace gta::config {

using detail::closest_hint;
using detail::Value;

// ---- attention types and their keys (the table: config/attention_types.h) ---------------------

const std::vector<std::string>& attention_types() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& t : attention_type_table()) v.push_back(t.name);
    return v;
  }();
  return names;
}

const std::vector<std::string>& attention_keys(const std::string& type) { return attention_type(type).keys; }

namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// ---- the schema, once: visitors over each section's fields ----------------------------------

template <class M, class F>
void visit_model(M& m, F&& f) {  // all keys but `attention`
  f("vocab_size", m.vocab_size);
  f("d_model", m.d_model);
  f("n_layers", m.n_layers);
  f("d_ff", m.d_ff);
  f("n_heads", m.n_heads);
  f("norm_eps", m.norm_eps);
  f("rope_theta", m.rope_theta);
  f("tie_embeddings", m.tie_embeddings);
}

template <class A, class F>
void visit_attention(A& a, F&& f) {  // all keys but `type`
  f("n_kv_heads", a.n_kv_heads);
  f("n_q_heads", a.n_q_heads);
  f("n_k_heads", a.n_k_heads);
  f("n_v_heads", a.n_v_heads);
  f("d_qk", a.d_qk);
  f("d_latent", a.d_latent);
  f("d_c", a.d_c);
  f("d_rope", a.d_rope);
  f("d_nope", a.d_nope);
  f("d_v", a.d_v);
  f("qkv_bias", a.qkv_bias);
}

template <class D, class F>
void visit_data(D& d, F&& f) {
  f("train", d.train);
  f("val", d.val);
  f("tokenizer", d.tokenizer);
  f("mode", d.mode);
}

template <class T, class F>
void visit_train(T& t, F&& f) {
  f("steps", t.steps);
  f("batch_size", t.batch_size);
  f("global_batch_tokens", t.global_batch_tokens);
  f("seq_len", t.seq_len);
  f("seed", t.seed);
  f("out_dir", t.out_dir);
  f("device", t.device);
  f("dtype", t.dtype);
  f("log_every", t.log_every);
  f("init_from", t.init_from);
}

template <class O, class F>
void visit_optim(O& o, F&& f) {
  f("lr", o.lr);
  f("min_lr_ratio", o.min_lr_ratio);
  f("weight_decay", o.weight_decay);
  f("beta1", o.beta1);
  f("beta2", o.beta2);
  f("eps", o.eps);
  f("grad_clip", o.grad_clip);
  f("warmup_steps", o.warmup_steps);
  f("decay_steps", o.decay_steps);
  f("schedule", o.schedule);
  f("decay_norms_and_biases", o.decay_norms_and_biases);
  f("decay_embeddings", o.decay_embeddings);
}

template <class C, class F>
void visit_checkpoint(C& c, F&& f) {
  f("every", c.every);
  f("keep", c.keep);
}

template <class E, class F>
void visit_eval(E& e, F&& f) {
  f("every", e.every);
  f("batches", e.batches);
}

template <class D, class F>
void visit_dist(D& d, F&& f) {
  f("timeout_s", d.timeout_s);
  f("rank0_timeout_s", d.rank0_timeout_s);
  f("bucket_mb", d.bucket_mb);
  f("zero1", d.zero1);
}

template <class L, class F>
void visit_logging(L& l, F&& f) {
  f("tensorboard", l.tensorboard);
  f("peak_tflops", l.peak_tflops);
}

// Visits the sections of a run config (model excluded: it has the nested attention map).
template <class R, class F>
void visit_plain_sections(R& r, F&& f) {
  f("data", [&](auto&& g) { visit_data(r.data, g); });
  f("train", [&](auto&& g) { visit_train(r.train, g); });
  f("optim", [&](auto&& g) { visit_optim(r.optim, g); });
  f("checkpoint", [&](auto&& g) { visit_checkpoint(r.checkpoint, g); });
  f("eval", [&](auto&& g) { visit_eval(r.eval, g); });
  f("dist", [&](auto&& g) { visit_dist(r.dist, g); });
  f("logging", [&](auto&& g) { visit_logging(r.logging, g); });
}

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> s = {"model", "data", "train", "optim", "checkpoint", "eval", "dist", "logging"};
  return s;
}

template <class Visit>
std::vector<std::string> keys_of(Visit&& visit) {
  std::vector<std::string> keys;
  visit([&](const char* k, auto&) { keys.push_back(k); });
  return keys;
}

const std::vector<std::string>& model_keys() {
  static const std::vector<std::string> k = [] {
    ModelConfig m;
    auto keys = keys_of([&](auto&& g) { visit_model(m, g); });
    keys.push_back("attention");
    return keys;
  }();
  return k;
}

const std::vector<std::string>& all_attention_keys() {  // "type" first
  static const std::vector<std::string> k = [] {
    AttentionConfig a;
    auto keys = keys_of([&](auto&& g) { visit_attention(a, g); });
    keys.insert(keys.begin(), "type");
    return keys;
  }();
  return k;
}

std::vector<std::string> plain_section_keys(const std::string& section) {
  RunConfig r;
  std::vector<std::string> out;
  visit_plain_sections(r, [&](const char* name, auto&& visit) {
    if (section == name) out = keys_of(visit);
  });
  return out;
}

// ---- scalars ---------------------------------------------------------------------------------

bool parse_double_text(std::string s, double& out) {
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = b + s.size();
  auto [p, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && p == e && std::isfinite(out);
}

bool parse_int_text(std::string s, int64_t& out) {
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = b + s.size();
  auto [p, ec] = std::from_chars(b, e, out);
  if (ec == std::errc() && p == e) return true;
  // 1e6, 2.0: integral values written as numbers.
  double d;
  if (!parse_double_text(s, d) || d != std::floor(d) || std::fabs(d) >= 9.2e18) return false;
  out = static_cast<int64_t>(d);
  return true;
}

[[noreturn]] void type_error(const Value& v, const std::string& path, const std::string& expected) {
  fail("{}: {}: expected {}, got {}", v.where, path, expected, v.describe());
}

void parse_leaf(const Value& v, const std::string& path, int64_t& out) {
  if (v.kind != Value::Kind::scalar || !parse_int_text(v.scalar, out)) type_error(v, path, "an integer");
}

void parse_leaf(const Value& v, const std::string& path, int& out) {
  int64_t x;
  if (v.kind != Value::Kind::scalar || !parse_int_text(v.scalar, x)) type_error(v, path, "an integer");
  if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
    type_error(v, path, "an integer that fits in 32 bits");
  out = static_cast<int>(x);
}

void parse_leaf(const Value& v, const std::string& path, uint64_t& out) {
  bool ok = false;
  if (v.kind == Value::Kind::scalar) {
    std::string s = v.scalar;
    if (!s.empty() && s[0] == '+') s.erase(0, 1);
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    ok = !s.empty() && ec == std::errc() && p == s.data() + s.size();
  }
  if (!ok) type_error(v, path, "a non-negative integer");
}

void parse_leaf(const Value& v, const std::string& path, double& out) {
  if (v.kind != Value::Kind::scalar || !parse_double_text(v.scalar, out)) type_error(v, path, "a number");
}

void parse_leaf(const Value& v, const std::string& path, bool& out) {
  if (v.kind == Value::Kind::scalar) {
    const std::string& s = v.scalar;
    if (s == "true" || s == "True" || s == "TRUE" || s == "yes" || s == "Yes" || s == "on" || s == "On") {
      out = true;
      return;
    }
    if (s == "false" || s == "False" || s == "FALSE" || s == "no" || s == "No" || s == "off" || s == "Off") {
      out = false;
      return;
    }
  }
  type_error(v, path, "true or false");
}

void parse_leaf(const Value& v, const std::string& path, std::string& out) {
  if (v.kind == Value::Kind::null) {
    out.clear();
    return;
  }
  if (v.kind != Value::Kind::scalar) type_error(v, path, "a string");
  out = v.scalar;
}

// ---- tree -> structs -------------------------------------------------------------------------

using Locs = std::map<std::string, std::string>;  // key path -> where its value was given

// Returns the section's map, or nullptr when absent or empty; anything else is an error.
const Value* section_map(const Value* sec, const std::string& path, Locs& locs) {
  if (!sec || sec->kind == Value::Kind::null) return nullptr;
  if (!sec->is_map()) fail("{}: {}: expected a map of keys, got {}", sec->where, path, sec->describe());
  locs[path] = sec->key_where.empty() ? sec->where : sec->key_where;
  return sec;
}

template <class Visit>
void read_plain_section(const Value* sec, const std::string& path, Visit&& visit, Locs& locs,
                        const std::vector<std::string>& extra_keys = {}) {
  std::vector<std::string> keys = keys_of(visit);
  keys.insert(keys.end(), extra_keys.begin(), extra_keys.end());
  for (const auto& [k, v] : sec->items)
    if (!contains(keys, k)) fail("{}: {}.{}: unknown key {}", v.key_where, path, k, closest_hint(k, keys));
  visit([&](const char* key, auto& field) {
    if (const Value* v = sec->find(key)) {
      const std::string full = path + "." + key;
      locs[full] = v->where;
      parse_leaf(*v, full, field);
    }
  });
}

void read_attention(const Value* sec, AttentionConfig& a, Locs& locs) {
  const std::string path = "model.attention";
  sec = section_map(sec, path, locs);
  if (!sec) return;
  if (const Value* t = sec->find("type")) {
    locs[path + ".type"] = t->where;
    if (t->kind != Value::Kind::scalar || !contains(attention_types(), t->scalar)) {
      std::string hint;
      if (t->kind == Value::Kind::scalar) hint = closest_hint(t->scalar, attention_types(), false);
      fail("{}: {}.type: expected one of {}, got {} {}", t->where, path, join(attention_types()), t->describe(), hint);
    }
    a.type = t->scalar;
  }
  const auto& allowed = attention_keys(a.type);
  for (const auto& [k, v] : sec->items) {
    if (k == "type" || contains(allowed, k)) continue;
    if (contains(all_attention_keys(), k))
      fail("{}: {}.{} is not a key of type {} (type {} takes: {})", v.key_where, path, k, a.type, a.type,
           join(allowed));
    std::vector<std::string> cands = allowed;
    cands.insert(cands.begin(), "type");
    fail("{}: {}.{}: unknown key {}", v.key_where, path, k, closest_hint(k, cands));
  }
  visit_attention(a, [&](const char* key, auto& field) {
    if (const Value* v = sec->find(key)) {
      const std::string full = path + "." + key;
      locs[full] = v->where;
      parse_leaf(*v, full, field);
    }
  });
}

void read_model(const Value* sec, ModelConfig& m, Locs& locs) {
  sec = section_map(sec, "model", locs);
  if (!sec) return;
  read_plain_section(sec, "model", [&](auto&& g) { visit_model(m, g); }, locs, {"attention"});
  read_attention(sec->find("attention"), m.attention, locs);
}

RunConfig read_run(const Value& root, Locs& locs) {
  if (!root.is_map()) fail("{}: expected a map of sections (model:, data:, train:, ...), got {}", root.where, root.describe());
  for (const auto& [k, v] : root.items)
    if (!contains(section_names(), k))
      fail("{}: {}: unknown section {}", v.key_where, k, closest_hint(k, section_names()));
  RunConfig c;
  read_model(root.find("model"), c.model, locs);
  visit_plain_sections(c, [&](const char* name, auto&& visit) {
    if (const Value* sec = section_map(root.find(name), name, locs)) read_plain_section(sec, name, visit, locs);
  });
  return c;
}

// ---- validation ------------------------------------------------------------------------------

// Returns the prefix naming where `path` (or its closest given parent) was set: "file:3:5: ".
using Where = std::function<std::string(const std::string& path)>;

Where no_where() {
  return [](const std::string&) { return std::string(); };
}

Where where_from(const Locs& locs, const std::string& source) {
  return [&locs, source](const std::string& path) {
    std::string p = path;
    while (true) {
      auto it = locs.find(p);
      if (it != locs.end()) return it->second + ": ";
      auto dot = p.rfind('.');
      if (dot == std::string::npos) break;
      p.resize(dot);
    }
    return source + ": ";
  };
}

void validate_model(const ModelConfig& m, const Where& w) {
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) {
      const std::string path = std::string("model.") + key;
      fail("{}{} must be a positive integer (got {}{})", w(path), path, v, v == 0 ? "; is it missing?" : "");
    }
  };
  if (m.vocab_size < 0)
    fail("{}model.vocab_size must be >= 0 (0 = take it from the tokenizer), got {}", w("model.vocab_size"),
         m.vocab_size);
  positive("d_model", m.d_model);
  positive("n_layers", m.n_layers);
  positive("d_ff", m.d_ff);
  positive("n_heads", m.n_heads);
  if (!(m.norm_eps > 0) || !std::isfinite(m.norm_eps))
    fail("{}model.norm_eps must be a positive number, got {}", w("model.norm_eps"), m.norm_eps);
  if (!(m.rope_theta > 0) || !std::isfinite(m.rope_theta))
    fail("{}model.rope_theta must be a positive number, got {}", w("model.rope_theta"), m.rope_theta);
  if (m.d_model % m.n_heads != 0)
    fail("{}model.n_heads ({}) must divide model.d_model ({})", w("model.n_heads"), m.n_heads, m.d_model);

  const AttentionConfig& a = m.attention;
  if (!contains(attention_types(), a.type))
    fail("{}model.attention.type: expected one of {}, got '{}' {}", w("model.attention.type"),
         join(attention_types()), a.type, closest_hint(a.type, attention_types(), false));
  const auto& allowed = attention_keys(a.type);
  // Keys of other types must be left out (their fields zero).
  visit_attention(a, [&](const char* key, const auto& field) {
    if (!contains(allowed, key) && field != std::remove_cvref_t<decltype(field)>{})
      fail("{}model.attention.{} ({}) is not a key of type {} (type {} takes: {})", w(std::string("model.attention.") + key),
           key, field, a.type, a.type, join(allowed));
  });
  attention_type(a.type).validate(m, AttentionRules(m, w));
}

void one_of(const std::string& v, const std::vector<std::string>& allowed, const std::string& path, const Where& w) {
  if (!contains(allowed, v))
    fail("{}{}: expected one of {}, got '{}' {}", w(path), path, join(allowed), v, closest_hint(v, allowed, false));
}

void validate_run(const RunConfig& c, const Where& w) {
  validate_model(c.model, w);
  one_of(c.data.mode, {"random", "sequential"}, "data.mode", w);

  const TrainConfig& t = c.train;
  auto at_least = [&](const std::string& path, int64_t v, int64_t lo, const char* extra = "") {
    if (v < lo) fail("{}{} must be >= {}{}, got {}", w(path), path, lo, extra, v);
  };
  at_least("train.steps", t.steps, 1);
  at_least("train.batch_size", t.batch_size, 1);
  at_least("train.seq_len", t.seq_len, 1);
  at_least("train.global_batch_tokens", t.global_batch_tokens, 0, " (0 = batch_size*seq_len*ranks)");
  if (t.global_batch_tokens > 0 && t.global_batch_tokens % (t.batch_size * t.seq_len) != 0)
    fail("{}train.global_batch_tokens ({}) must be a multiple of train.batch_size*train.seq_len ({}*{} = {}) "
         "times the number of ranks",
         w("train.global_batch_tokens"), t.global_batch_tokens, t.batch_size, t.seq_len, t.batch_size * t.seq_len);
  if (t.out_dir.empty()) fail("{}train.out_dir must not be empty", w("train.out_dir"));
  {
    const std::string& d = t.device;
    bool ok = d == "cpu" || d == "cuda" || d == "auto";
    if (!ok && d.rfind("cuda:", 0) == 0 && d.size() > 5)
      ok = std::all_of(d.begin() + 5, d.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    if (!ok)
      fail("{}train.device: expected cpu, cuda, cuda:N or auto, got '{}' {}", w("train.device"), d,
           closest_hint(d, {"cpu", "cuda", "auto"}, false));
  }
  one_of(t.dtype, {"f32", "bf16", "f64"}, "train.dtype", w);
  at_least("train.log_every", t.log_every, 1);

  const OptimConfig& o = c.optim;
  auto check = [&](bool ok, const std::string& path, const char* rule, double v) {
    if (!ok) fail("{}{} must be {}, got {}", w(path), path, rule, v);
  };
  check(o.lr > 0 && std::isfinite(o.lr), "optim.lr", "> 0", o.lr);
  check(o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1, "optim.min_lr_ratio", "in [0, 1]", o.min_lr_ratio);
  check(o.weight_decay >= 0 && std::isfinite(o.weight_decay), "optim.weight_decay", ">= 0", o.weight_decay);
  check(o.beta1 >= 0 && o.beta1 < 1, "optim.beta1", "in [0, 1)", o.beta1);
  check(o.beta2 >= 0 && o.beta2 < 1, "optim.beta2", "in [0, 1)", o.beta2);
  check(o.eps > 0 && std::isfinite(o.eps), "optim.eps", "> 0", o.eps);
  check(o.grad_clip >= 0 && std::isfinite(o.grad_clip), "optim.grad_clip", ">= 0 (0 = no clipping)", o.grad_clip);
  at_least("optim.warmup_steps", o.warmup_steps, 0);
  at_least("optim.decay_steps", o.decay_steps, 0, " (0 = train.steps)");
  one_of(o.schedule, {"cosine", "linear", "constant"}, "optim.schedule", w);

  at_least("checkpoint.every", c.checkpoint.every, 0, " (0 = only at the end)");
  at_least("checkpoint.keep", c.checkpoint.keep, 0, " (0 = keep all)");
  at_least("eval.every", c.eval.every, 0, " (0 = only at the end)");
  at_least("eval.batches", c.eval.batches, 1);
  check(c.dist.timeout_s > 0 && std::isfinite(c.dist.timeout_s), "dist.timeout_s", "> 0", c.dist.timeout_s);
  check(c.dist.rank0_timeout_s > 0 && std::isfinite(c.dist.rank0_timeout_s), "dist.rank0_timeout_s", "> 0",
        c.dist.rank0_timeout_s);
  check(c.dist.bucket_mb > 0 && std::isfinite(c.dist.bucket_mb), "dist.bucket_mb", "> 0", c.dist.bucket_mb);
  check(c.logging.peak_tflops >= 0 && std::isfinite(c.logging.peak_tflops), "logging.peak_tflops",
        ">= 0 (0 = unknown: no MFU)", c.logging.peak_tflops);
}

// ---- overrides: which key paths exist --------------------------------------------------------

struct RunSchema : detail::Schema {
  // The candidates at depth path.size()-1 given the parents, or nullopt when a parent is unknown.
  std::vector<std::string> level(const std::vector<std::string>& path, size_t depth, bool& parent_ok) const {
    parent_ok = true;
    if (depth == 0) return section_names();
    if (path[0] == "model") {
      if (depth == 1) return model_keys();
      if (depth == 2 && path[1] == "attention") return all_attention_keys();
    } else if (depth == 1 && contains(section_names(), path[0])) {
      return plain_section_keys(path[0]);
    }
    parent_ok = false;
    return {};
  }
  int lookup(const std::vector<std::string>& path) const override {
    for (size_t d = 0; d < path.size(); ++d) {
      bool ok;
      auto cands = level(path, d, ok);
      if (!ok || !contains(cands, path[d])) return 0;
    }
    const bool section = path.size() == 1 || (path.size() == 2 && path[0] == "model" && path[1] == "attention");
    return section ? 2 : 1;
  }
  std::string hint(const std::vector<std::string>& path) const override {
    for (size_t d = 0; d < path.size(); ++d) {
      bool ok;
      auto cands = level(path, d, ok);
      if (!ok) {
        std::string parent;
        for (size_t i = 0; i < d; ++i) parent += (i ? "." : "") + path[i];
        return fmt::format("({} has no keys inside it)", parent);
      }
      if (!contains(cands, path[d])) return closest_hint(path[d], cands);
    }
    return "";
  }
};

// ---- struct -> JSON / YAML -------------------------------------------------------------------

nlohmann::json attention_json(const AttentionConfig& a) {
  nlohmann::json j = nlohmann::json::object();
  j["type"] = a.type;
  const auto* allowed = contains(attention_types(), a.type) ? &attention_keys(a.type) : nullptr;
  visit_attention(a, [&](const char* key, const auto& field) {
    if (allowed ? contains(*allowed, key) : field != std::remove_cvref_t<decltype(field)>{}) j[key] = field;
  });
  return j;
}

std::string source_name(const std::string& s) { return s.empty() ? std::string("config") : s; }

RunConfig load_tree(Value root, const std::vector<std::string>& overrides, const std::string& source) {
  RunSchema schema;
  for (const auto& o : overrides) detail::apply_override(root, o, schema);
  Locs locs;
  RunConfig c = read_run(root, locs);
  validate_run(c, where_from(locs, source));
  return c;
}

}  // namespace

namespace detail {
void drop_foreign_attention_keys(Value& attention, const std::string& new_type) {
  if (!attention.is_map() || !contains(attention_types(), new_type)) return;
  const auto& keep = attention_keys(new_type);
  std::vector<std::string> drop;
  for (const auto& [k, v] : attention.items)
    if (k != "type" && contains(all_attention_keys(), k) && !contains(keep, k)) drop.push_back(k);
  for (const auto& k : drop) attention.erase(k);
}
}  // namespace detail

// ---- ModelConfig -----------------------------------------------------------------------------

int ModelConfig::head_dim() const { return n_heads > 0 ? d_model / n_heads : 0; }

int ModelConfig::gta_expansion() const {
  if (attention.type != "gta" || attention.n_q_heads <= 0 || attention.d_latent <= 0) return 0;
  return d_model / (attention.n_q_heads * attention.d_latent);
}

int ModelConfig::n_q() const { return attention_type(attention.type).shape(*this).n_q; }
int ModelConfig::n_k() const { return attention_type(attention.type).shape(*this).n_k; }
int ModelConfig::n_v() const { return attention_type(attention.type).shape(*this).n_v; }
int ModelConfig::n_kv() const { return n_k(); }
int ModelConfig::qk_dim() const { return attention_type(attention.type).shape(*this).qk_dim; }
int ModelConfig::v_dim() const { return attention_type(attention.type).shape(*this).v_dim; }
int ModelConfig::rope_dim() const { return attention_type(attention.type).shape(*this).rope_dim; }

// qkv_bias counts only for the types that have the key.
bool ModelConfig::has_qkv_bias() const {
  return attention.qkv_bias && contains(attention_type(attention.type).keys, "qkv_bias");
}

int64_t ModelConfig::kv_cache_elems_per_token_per_layer() const {
  int64_t n = 0;
  for (const auto& b : attention_type(attention.type).cache(*this)) n += b.heads * b.width;
  return n;
}

int64_t ModelConfig::num_parameters(int64_t vocab) const {
  const AttentionCounts attn = attention_type(attention.type).counts(*this);
  const int64_t d = d_model;
  const int64_t layer = attn.gemm_params + attn.vector_params + 3 * d * d_ff + 2 * d;
  return int64_t{n_layers} * layer + vocab * d * (tie_embeddings ? 1 : 2) + d;
}

void ModelConfig::validate() const { validate_model(*this, no_where()); }

// ---- TrainConfig / RunConfig -----------------------------------------------------------------

int64_t TrainConfig::grad_accum_steps(int world) const {
  GTA_CHECK(world >= 1, "grad_accum_steps: world size must be >= 1, got {}", world);
  const int64_t micro = tokens_per_micro_batch(world);
  if (global_batch_tokens == 0) return 1;
  if (global_batch_tokens % micro != 0 || global_batch_tokens < micro)
    fail("train.global_batch_tokens ({}) must be a multiple of train.batch_size*train.seq_len*ranks "
         "({}*{}*{} = {})",
         global_batch_tokens, batch_size, seq_len, world, micro);
  return global_batch_tokens / micro;
}

void RunConfig::validate() const { validate_run(*this, no_where()); }

// ---- loading ---------------------------------------------------------------------------------

RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  return load_tree(detail::load_yaml_file(yaml_path), overrides, yaml_path);
}

RunConfig parse_run_config(const std::string& yaml_text, const std::string& source,
                           const std::vector<std::string>& overrides, const std::string& base_dir) {
  return load_tree(detail::parse_yaml_text(yaml_text, source_name(source), base_dir), overrides,
                   source_name(source));
}

ModelConfig load_model_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  Value root = detail::load_yaml_file(yaml_path);
  bool has_model = root.find("model") != nullptr;
  for (const auto& o : overrides) has_model |= o.rfind("model.", 0) == 0;
  if (!has_model)
    fail("{}: no model: section (expected model: with d_model, n_layers, d_ff, n_heads, attention, ...)", yaml_path);
  return load_tree(std::move(root), overrides, yaml_path).model;
}

ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& source) {
  Value root = detail::from_json(j, source);
  Locs locs;
  ModelConfig m;
  read_model(&root, m, locs);
  validate_model(m, where_from(locs, source));
  return m;
}

RunConfig run_config_from_json(const nlohmann::json& j, const std::string& source) {
  Value root = detail::from_json(j, source);
  return load_tree(std::move(root), {}, source);
}

nlohmann::json to_json(const ModelConfig& m) {
  nlohmann::json j = nlohmann::json::object();
  visit_model(m, [&](const char* key, const auto& field) { j[key] = field; });
  j["attention"] = attention_json(m.attention);
  return j;
}

nlohmann::json to_json(const RunConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  j["model"] = to_json(c.model);
  visit_plain_sections(c, [&](const char* name, auto&& visit) {
    nlohmann::json s = nlohmann::json::object();
    visit([&](const char* key, const auto& field) { s[key] = field; });
    j[name] = std::move(s);
  });
  return j;
}

namespace {

void emit_field(YAML::Emitter& e, const std::string& v) { e << YAML::DoubleQuoted << v; }
void emit_field(YAML::Emitter& e, bool v) { e << (v ? "true" : "false"); }
void emit_field(YAML::Emitter& e, double v) { e << fmt::format("{}", v); }
template <class I>
void emit_field(YAML::Emitter& e, I v) {
  e << fmt::format("{}", v);
}

void emit_json(YAML::Emitter& e, const nlohmann::json& j) {  // a scalar
  if (j.is_string()) {
    e << YAML::DoubleQuoted << j.get<std::string>();
  } else {
    e << j.dump();
  }
}

}  // namespace

std::string to_yaml(const RunConfig& c) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  visit_model(c.model, [&](const char* key, const auto& field) {
    e << YAML::Key << key << YAML::Value;
    emit_field(e, field);
  });
  // attention: type first, then the keys of that type in the order of docs/attention.md ("Config keys").
  const nlohmann::json att = attention_json(c.model.attention);
  e << YAML::Key << "attention" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "type" << YAML::Value;
  emit_json(e, att.at("type"));
  visit_attention(c.model.attention, [&](const char* key, const auto&) {
    if (!att.contains(key)) return;
    e << YAML::Key << key << YAML::Value;
    emit_json(e, att.at(key));
  });
  e << YAML::EndMap << YAML::EndMap;
  visit_plain_sections(c, [&](const char* name, auto&& visit) {
    e << YAML::Key << name << YAML::Value << YAML::BeginMap;
    visit([&](const char* key, const auto& field) {
      e << YAML::Key << key << YAML::Value;
      emit_field(e, field);
    });
    e << YAML::EndMap;
  });
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace gta::config
