// The table of attention types (config/attention_types.h) against the nn::Attention classes that
// implement them: for every entry, a built model holds the matrix and vector parameters the table
// counts, each layer caches exactly the buffers the table lists, and the statistics of `gta info`
// agree with the config. A new type is covered once tests/test_models.h's small_config knows it.
#include <gtest/gtest.h>

#include "config/attention_types.h"
#include "nn/model.h"
#include "nn/model_stats.h"
#include "test_models.h"

namespace {

using gta::config::attention_type_table;

TEST(AttentionTypes, ConfigListsTheTable) {
  std::vector<std::string> names;
  for (const auto& t : attention_type_table()) names.push_back(t.name);
  EXPECT_EQ(gta::config::attention_types(), names);
  EXPECT_EQ(gta::config::find_attention_type("gtx"), nullptr);
}

TEST(AttentionTypes, BuiltModelHoldsTheCountedParameters) {
  for (const auto& t : attention_type_table()) {
    SCOPED_TRACE(t.name);
    const auto cfg = gta_test::small_config(t.name);
    const gta::nn::Model model(cfg);
    // Layer 0's attention parameters: matrices (the GEMM weights) and vectors (biases, norms).
    int64_t matrices = 0, vectors = 0;
    for (const auto& [name, p] : model.params().all()) {
      if (name.rfind("model.layers.0.self_attn.", 0) != 0) continue;
      (p.ndim() == 2 ? matrices : vectors) += p.numel();
    }
    const auto counts = t.counts(cfg);
    EXPECT_EQ(matrices, counts.gemm_params);
    EXPECT_EQ(vectors, counts.vector_params);
    EXPECT_EQ(model.params().count(), cfg.num_parameters());
    const auto stats = gta::nn::model_stats(cfg, 16);
    EXPECT_EQ(stats.total_params, cfg.num_parameters());
    EXPECT_EQ(stats.layer.attn_params, counts.gemm_params + counts.vector_params);
    EXPECT_EQ(stats.layer.kv_elems_per_token, cfg.kv_cache_elems_per_token_per_layer());
  }
}

TEST(AttentionTypes, LayersCacheWhatTheTableLists) {
  for (const auto& t : attention_type_table()) {
    SCOPED_TRACE(t.name);
    const auto cfg = gta_test::small_config(t.name);
    const gta::nn::Model model(cfg);
    const auto want = t.cache(cfg);
    const auto layers = model.cache_layout();
    ASSERT_EQ(layers.size(), static_cast<size_t>(cfg.n_layers));
    for (const auto& layer : layers) {
      ASSERT_EQ(layer.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(layer[i].name, want[i].name);
        EXPECT_EQ(layer[i].heads, want[i].heads);
        EXPECT_EQ(layer[i].width, want[i].width);
      }
    }
  }
}

}  // namespace
