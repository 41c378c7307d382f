// The decoder and its seven attention types: golden vectors, finite differences through the
// whole model on other sizes, parameter and cost accounting.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "autograd/tape.h"
#include "config/config.h"
#include "io/safetensors.h"
#include "nn/golden.h"
#include "nn/model.h"
#include "nn/model_stats.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace gta;
namespace fs = std::filesystem;
using gta_test::random_tokens;

namespace {

const std::string kGoldenDir = std::string(GTA_SOURCE_DIR) + "/tests/golden/";

config::ModelConfig small_config(const std::string& type, bool tied) {
  config::ModelConfig c = gta_test::model_config(23, 24, 2, 20, 6, type);
  c.tie_embeddings = tied;
  auto& a = c.attention;
  if (type == "gqa") a.n_kv_heads = 3;
  if (type == "gva" || type == "gha" || type == "gta") a.n_q_heads = 3, a.n_k_heads = 1;
  if (type == "gha") a.n_v_heads = 2;  // neither divides nor is a multiple of n_q: the general fold
  if (type == "gta") a.n_v_heads = 3, a.d_qk = 6, a.d_latent = 4, a.qkv_bias = true;  // e = 24/(3*4) = 2
  if (type == "mla") a.d_c = 10, a.d_rope = 4, a.d_nope = 6, a.d_v = 5;
  return c;
}

// Every attention type of the table (config/attention_types.h).
const std::vector<std::string>& kTypes = config::attention_types();

}  // namespace

class GoldenFile : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenFile, MatchesInF64AndF32) {
  const std::string path = kGoldenDir + GetParam() + ".safetensors";
  ASSERT_TRUE(fs::exists(path)) << path;
  nn::GoldenReport r64 = nn::check_golden(path, DType::f64);
  nn::GoldenReport r32 = nn::check_golden(path, DType::f32);
  for (const auto& g : r64.groups) EXPECT_LE(g.max_rel_err, 1e-9) << "f64 " << g.group << " worst " << g.worst;
  for (const auto& g : r32.groups) EXPECT_LE(g.max_rel_err, 1e-4) << "f32 " << g.group << " worst " << g.worst;
  EXPECT_EQ(r64.kv_elems_expected, r64.kv_elems_model);
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenFile, ::testing::Values("mha", "gqa", "gva", "gha", "gta", "mla"));

class ModelType : public ::testing::TestWithParam<std::string> {};

// d(loss)/d(theta) by central differences on a sample of every parameter's entries, in f64,
// on sizes and head counts unlike the golden files, with untied embeddings.
TEST_P(ModelType, WholeModelGradCheckF64) {
  config::ModelConfig c = small_config(GetParam(), /*tied=*/false);
  nn::Model model(c, DType::f64, 7);
  Tensor tokens = random_tokens(2, 6, c.vocab_size, 3);
  model.loss(tokens).backward();
  Rng pick(11);
  double worst = 0;
  std::string worst_name;
  for (const auto& [name, p] : model.params().all()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    std::vector<double> g = p.grad().to_doubles();
    double* data = p.data<double>();
    for (int s = 0; s < 3; ++s) {
      const int64_t i = static_cast<int64_t>(pick.below(p.numel()));
      const double eps = 1e-5, keep = data[i];
      autograd::NoGradGuard ng;
      data[i] = keep + eps;
      const double up = model.loss(tokens).item();
      data[i] = keep - eps;
      const double down = model.loss(tokens).item();
      data[i] = keep;
      const double numeric = (up - down) / (2 * eps);
      const double err = std::abs(numeric - g[i]) / std::max(1e-3, std::abs(numeric) + std::abs(g[i]));
      if (err > worst) worst = err, worst_name = name;
    }
  }
  EXPECT_LT(worst, 1e-6) << "worst parameter " << worst_name;
}

// The parameter count of the built model equals the closed forms of `gta info` and config.h.
TEST_P(ModelType, ParameterCountsMatchClosedForms) {
  for (bool tied : {true, false}) {
    config::ModelConfig c = small_config(GetParam(), tied);
    nn::Model model(c, DType::f32, 1);
    nn::ModelStats s = nn::model_stats(c, 16);
    EXPECT_EQ(model.params().count(), s.total_params) << "tied " << tied;
    EXPECT_EQ(model.params().count(), c.num_parameters()) << "tied " << tied;
    nn::KVCache cache = model.make_cache(3, 5);
    EXPECT_EQ(cache.bytes(), 3 * 5 * c.n_layers * s.layer.kv_elems_per_token * 4);
  }
}

// A file in the golden format written for another size (untied, odd head counts) is read and
// checked the same way: f32 against this model's own f64 results.
TEST_P(ModelType, GoldenFormatOfOtherSizes) {
  config::ModelConfig c = small_config(GetParam(), false);
  nn::Model model(c, DType::f64, 5);
  Tensor tokens = random_tokens(3, 8, c.vocab_size, 9);
  auto [inputs, targets] = nn::split_inputs_targets(tokens);
  // The file stores f32 weights; its f64 expectations come from exactly those weights.
  std::map<std::string, Tensor> out{{"tokens", tokens}};
  for (const auto& [name, p] : model.params().all()) out[name] = p.detach().to(DType::f32);
  nn::Model ref(c, DType::f64, 0);
  ref.params().load(out, "test", {"tokens"});
  Tensor loss = ref.loss(tokens);
  loss.backward();
  out["expected.loss"] = loss.detach();
  {
    autograd::NoGradGuard ng;
    out["expected.logits"] = ref.forward(inputs);
  }
  for (const auto& [name, p] : ref.params().all()) out["grad." + name] = p.grad();
  const std::string path = (fs::temp_directory_path() / ("gta_golden_" + GetParam() + ".safetensors")).string();
  io::save_safetensors(path, out, {{"config", config::to_json(c).dump()}, {"batch", "3"}, {"seq_len", "7"}});
  nn::GoldenReport r = nn::check_golden(path, DType::f32);
  EXPECT_LE(r.max_rel_err(), 1e-4);
  EXPECT_GT(r.max_rel_err(), 0.0);  // f32 really ran (differs from the f64 reference)
  EXPECT_LE(nn::check_golden(path, DType::f64).max_rel_err(), 1e-12);
  fs::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Model, ModelType, ::testing::ValuesIn(kTypes));

TEST(ModelStats, GtaSAgainstGqaS) {
  const std::string dir = std::string(GTA_SOURCE_DIR) + "/configs/models/s/";
  config::ModelConfig gta = config::load_model_config(dir + "gta.yaml");
  config::ModelConfig gqa = config::load_model_config(dir + "gqa.yaml");
  gta.vocab_size = gqa.vocab_size = 32000;
  nn::ModelStats a = nn::model_stats(gta, 2048), b = nn::model_stats(gqa, 2048);
  EXPECT_EQ(a.layer.kv_elems_per_token, 64 + 96);
  EXPECT_EQ(b.layer.kv_elems_per_token, 2 * 4 * 64);
  EXPECT_NEAR(static_cast<double>(a.kv_elems_per_token) / b.kv_elems_per_token, 0.3125, 1e-12);
  EXPECT_NEAR(a.attn_madds_per_token / b.attn_madds_per_token, 640.0 / 1536.0, 1e-12);
  // Identical non-attention parts across the family.
  EXPECT_EQ(a.layer.mlp_params, b.layer.mlp_params);
  EXPECT_EQ(a.embedding_params, b.embedding_params);
}

TEST(ModelStats, PaperOneBillion) {
  const std::string dir = std::string(GTA_SOURCE_DIR) + "/configs/models/";
  nn::ModelStats g = nn::model_stats(config::load_model_config(dir + "gta-1b.yaml"), 2048);
  nn::ModelStats q = nn::model_stats(config::load_model_config(dir + "gqa-1b.yaml"), 2048);
  EXPECT_EQ(g.layer.kv_elems_per_token, 192);
  EXPECT_EQ(q.layer.kv_elems_per_token, 640);
  EXPECT_NEAR(g.layer.qk_madds_per_pair + g.layer.v_madds_per_pair, 960, 0);
  EXPECT_NEAR(q.layer.qk_madds_per_pair + q.layer.v_madds_per_pair, 2560, 0);
}

TEST(ModelConfigs, AblationFamiliesLoad) {
  for (std::string size : {"s", "xs"})
    for (const auto& t : kTypes) {
      const std::string path = std::string(GTA_SOURCE_DIR) + "/configs/models/" + size + "/" + t + ".yaml";
      config::ModelConfig c = config::load_model_config(path);
      EXPECT_EQ(c.attention.type, t) << path;
      EXPECT_EQ(c.attention.qkv_bias, t == "gta") << path;
    }
}

TEST(Model, SameSeedSameInit) {
  config::ModelConfig c = small_config("gta", true);
  nn::Model a(c, DType::f32, 42), b(c, DType::f32, 42), d(c, DType::f32, 43);
  auto pa = a.params().all()[0].second.to_doubles(), pb = b.params().all()[0].second.to_doubles(),
       pd = d.params().all()[0].second.to_doubles();
  EXPECT_EQ(pa, pb);
  EXPECT_NE(pa, pd);
}
