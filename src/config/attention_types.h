// The table of attention types: for each type, its config keys and validation rules, the head
// counts and widths of the one causal primitive it reduces to, what one token stores in its KV
// cache, and its parameter and multiply-add counts (docs/attention.md has the math of each).
// The config (keys, validation, ModelConfig's derived counts), the attention factory
// (nn/attention/factory.cpp) and the model statistics (nn/model_stats.cpp) all read this table;
// adding a type is one entry here, one nn::Attention class and their tests
// (docs/architecture.md, "Adding an attention type").
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace gta::config {

struct ModelConfig;

// The nn::Attention class family that implements a type (built by nn::make_attention).
enum class AttentionModule { shared_map, gta, mla };

// The primitive ops::attention(q, k, v) of a type: n_q query heads (maps) of width qk_dim, n_k
// key heads, n_v value heads of width v_dim as the layer projects them (GVA/GHA: value heads of
// width hd, folded per map before the primitive); RoPE rotates the first rope_dim features of
// each query and key head.
struct AttentionShape {
  int n_q = 0, n_k = 0, n_v = 0, qk_dim = 0, v_dim = 0, rope_dim = 0;
};

// One buffer of a layer's KV cache: per token, `heads` x `width` elements (nn::CacheEntry).
struct CacheBuffer {
  std::string name;
  int64_t heads = 0, width = 0;
};

// The attention parameters of one layer and its work per (query, key) pair.
struct AttentionCounts {
  int64_t gemm_params = 0;    // matrix weights: the parameters that cost FLOPs
  int64_t vector_params = 0;  // biases and norm weights
  int64_t qk_madds_per_pair = 0, v_madds_per_pair = 0;  // scores, and values read
};

// The checks a type's validator applies, each a gta::Error that names where the key was set
// (file:line:column, the --set override or the JSON source), the key and the rule.
class AttentionRules {
 public:
  using Where = std::function<std::string(const std::string& path)>;
  AttentionRules(const ModelConfig& m, const Where& where) : m_(m), where_(where) {}
  // model.attention.<key> > 0 for each (key, value), checked in order.
  void positive(std::initializer_list<std::pair<const char*, int>> keys) const;
  // `small` (at path small_path) divides `big` (at big_path).
  void divides(const char* small_path, int small, const char* big_path, int big) const;
  // model.attention.<key> is even (RoPE rotates pairs of features).
  void even(const char* key, int value) const;
  // The head width d_model / n_heads is even (RoPE over whole heads).
  void even_head() const;
  // The location prefix of `path` ("file:3:5: "), for a rule of its own.
  std::string where(const std::string& path) const { return where_(path); }

 private:
  const ModelConfig& m_;
  const Where& where_;
};

struct AttentionType {
  std::string name;               // the value of model.attention.type
  std::vector<std::string> keys;  // its model.attention keys besides `type` (docs/attention.md order)
  AttentionModule module;
  // Throws through `rules` when a rule of the type is broken; the model's own keys (d_model,
  // n_heads, ...) are checked before.
  void (*validate)(const ModelConfig& m, const AttentionRules& rules);
  AttentionShape (*shape)(const ModelConfig& m);
  std::vector<CacheBuffer> (*cache)(const ModelConfig& m);  // what one token stores per layer
  AttentionCounts (*counts)(const ModelConfig& m);
};

// Every attention type, in the order of docs/attention.md.
const std::vector<AttentionType>& attention_type_table();
// The entry named `name`, or null.
const AttentionType* find_attention_type(const std::string& name);
// The entry named `name`; throws gta::Error naming model.attention.type and the types there are.
const AttentionType& attention_type(const std::string& name);

}  // namespace gta::config
