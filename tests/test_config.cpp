// Run configuration: defaults, YAML loading, overrides, includes, every error kind (the message
// must name the file, line, key and what was expected), every divisibility rule of
// docs/attention.md ("Validation rules"), JSON/YAML round trips, and the golden files' model configs.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "config/config.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace gta::config;
using gta_test::expect_error;
using gta_test::TempDir;

namespace {

const char* kModel = R"(model:
  vocab_size: 61
  d_model: 64
  n_layers: 2
  d_ff: 96
  n_heads: 4
  attention:
    type: gqa
    n_kv_heads: 2
)";

ModelConfig small_model(const std::string& type) {
  ModelConfig m = gta_test::model_config(61, 64, 2, 96, 4, type);  // the sizes of kModel
  auto& a = m.attention;
  if (type == "gqa") a.n_kv_heads = 2;
  if (type == "gva" || type == "gha" || type == "gta") a.n_q_heads = 2, a.n_k_heads = 1;
  if (type == "gha" || type == "gta") a.n_v_heads = 1;
  if (type == "gta") a.d_qk = 16, a.d_latent = 16, a.qkv_bias = true;
  if (type == "mla") a.d_c = 24, a.d_rope = 8, a.d_nope = 16, a.d_v = 16;
  return m;
}

}  // namespace

// ---- defaults and loading ----------------------------------------------------------------------

TEST(Config, Defaults) {
  RunConfig c;
  EXPECT_EQ(c.model.attention.type, "gqa");
  EXPECT_EQ(c.model.vocab_size, 0);
  EXPECT_DOUBLE_EQ(c.model.norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.model.rope_theta, 10000);
  EXPECT_TRUE(c.model.tie_embeddings);
  EXPECT_FALSE(c.model.attention.qkv_bias);
  EXPECT_EQ(c.data.mode, "random");
  EXPECT_EQ(c.train.steps, 1000);
  EXPECT_EQ(c.train.batch_size, 8);
  EXPECT_EQ(c.train.global_batch_tokens, 0);
  EXPECT_EQ(c.train.seq_len, 256);
  EXPECT_EQ(c.train.seed, 1337u);
  EXPECT_EQ(c.train.out_dir, "runs/default");
  EXPECT_EQ(c.train.device, "auto");
  EXPECT_EQ(c.train.dtype, "f32");
  EXPECT_EQ(c.train.log_every, 10);
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);
  EXPECT_DOUBLE_EQ(c.optim.min_lr_ratio, 0.1);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 0.1);
  EXPECT_DOUBLE_EQ(c.optim.beta1, 0.9);
  EXPECT_DOUBLE_EQ(c.optim.beta2, 0.95);
  EXPECT_DOUBLE_EQ(c.optim.eps, 1e-8);
  EXPECT_DOUBLE_EQ(c.optim.grad_clip, 1.0);
  EXPECT_EQ(c.optim.warmup_steps, 100);
  EXPECT_EQ(c.optim.schedule, "cosine");
  EXPECT_FALSE(c.optim.decay_norms_and_biases);
  EXPECT_FALSE(c.optim.decay_embeddings);
  EXPECT_EQ(c.checkpoint.every, 500);
  EXPECT_EQ(c.checkpoint.keep, 3);
  EXPECT_EQ(c.eval.every, 200);
  EXPECT_EQ(c.eval.batches, 20);
  EXPECT_TRUE(c.logging.tensorboard);
  EXPECT_EQ(c.logging.peak_tflops, 0);
}

TEST(Config, LoadsFileAndKeepsDefaultsForMissingKeys) {
  TempDir dir;
  const std::string path = dir.write("run.yaml", std::string(kModel) + R"(
data:
  train: data/shards/train_*.h5
  val: data/shards/val.h5
  tokenizer: data/tok.model
train:
  steps: 50
  seq_len: 128
  seed: 18446744073709551615
  dtype: bf16
optim:
  lr: 1e-3
  schedule: linear
  decay_embeddings: true
checkpoint:
  keep: 0
)");
  RunConfig c = load_run_config(path, {});
  EXPECT_EQ(c.model.d_model, 64);
  EXPECT_EQ(c.model.n_kv(), 2);
  EXPECT_EQ(c.data.train, "data/shards/train_*.h5");
  EXPECT_EQ(c.data.tokenizer, "data/tok.model");
  EXPECT_EQ(c.train.steps, 50);
  EXPECT_EQ(c.train.seq_len, 128);
  EXPECT_EQ(c.train.seed, UINT64_MAX);
  EXPECT_EQ(c.train.dtype, "bf16");
  EXPECT_EQ(c.train.batch_size, 8);  // default
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.optim.schedule, "linear");
  EXPECT_TRUE(c.optim.decay_embeddings);
  EXPECT_EQ(c.checkpoint.keep, 0);
  EXPECT_EQ(c.checkpoint.every, 500);  // default
}

TEST(Config, AcceptsIntegralNumbersInScientificNotation) {
  RunConfig c = parse_run_config(std::string(kModel) + "train:\n  steps: 1e4\n  global_batch_tokens: 4096\n", "t.yaml");
  EXPECT_EQ(c.train.steps, 10000);
  expect_error([&] { parse_run_config(std::string(kModel) + "train:\n  steps: 2.5\n", "t.yaml"); },
               {"t.yaml:11:10", "train.steps: expected an integer, got '2.5'"});
}

// ---- overrides -------------------------------------------------------------------------------

TEST(Config, OverridesApplyAfterTheFile) {
  TempDir dir;
  const std::string path = dir.write("run.yaml", std::string(kModel) + "train:\n  steps: 50\n");
  RunConfig c = load_run_config(path, {"train.steps=7", "optim.lr=0.01", "data.train=a/b*.h5", "model.tie_embeddings=false",
                                       "model.attention.qkv_bias=true", "eval.every=0"});
  EXPECT_EQ(c.train.steps, 7);
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.01);
  EXPECT_EQ(c.data.train, "a/b*.h5");
  EXPECT_FALSE(c.model.tie_embeddings);
  EXPECT_TRUE(c.model.attention.qkv_bias);
  EXPECT_EQ(c.eval.every, 0);
  // Later overrides win.
  EXPECT_EQ(load_run_config(path, {"train.steps=7", "train.steps=9"}).train.steps, 9);
  // A section can be replaced by a flow map.
  RunConfig g = load_run_config(path, {"model.attention={type: mqa}"});
  EXPECT_EQ(g.model.attention.type, "mqa");
  EXPECT_EQ(g.model.n_kv(), 1);
}

TEST(Config, OverrideOfAttentionTypeDropsKeysOfTheOldType) {
  TempDir dir;
  const std::string path = dir.write("run.yaml", kModel);
  RunConfig c = load_run_config(path, {"model.attention.type=gta", "model.attention.n_q_heads=2",
                                       "model.attention.n_k_heads=1", "model.attention.n_v_heads=1",
                                       "model.attention.d_qk=16", "model.attention.d_latent=32"});
  EXPECT_EQ(c.model.attention.type, "gta");
  EXPECT_EQ(c.model.attention.n_kv_heads, 0);
  EXPECT_EQ(c.model.gta_expansion(), 1);
  // Missing keys of the new type are named.
  expect_error([&] { load_run_config(path, {"model.attention.type=mla"}); },
               {"model.attention.d_c must be a positive integer for type mla", "missing"});
}

TEST(Config, OverrideOfUnknownKeyNamesIt) {
  TempDir dir;
  const std::string path = dir.write("run.yaml", kModel);
  expect_error([&] { load_run_config(path, {"train.stpes=5"}); },
               {"override 'train.stpes=5'", "unknown key train.stpes", "did you mean 'steps'"});
  expect_error([&] { load_run_config(path, {"trian.steps=5"}); }, {"unknown key trian.steps", "did you mean 'train'"});
  expect_error([&] { load_run_config(path, {"model.attention.n_kv=5"}); },
               {"unknown key model.attention.n_kv", "n_kv_heads"});
  expect_error([&] { load_run_config(path, {"train.steps.x=5"}); }, {"unknown key train.steps.x"});
  expect_error([&] { load_run_config(path, {"train.steps"}); }, {"override 'train.steps'", "key.path=value"});
  expect_error([&] { load_run_config(path, {"train..steps=1"}); }, {"not a key path"});
  // A key of another attention type.
  expect_error([&] { load_run_config(path, {"model.attention.d_c=4"}); },
               {"override 'model.attention.d_c=4'", "model.attention.d_c is not a key of type gqa"});
}

TEST(Config, OverrideWithWrongTypeNamesTheOverride) {
  TempDir dir;
  const std::string path = dir.write("run.yaml", kModel);
  expect_error([&] { load_run_config(path, {"train.steps=abc"}); },
               {"override 'train.steps=abc'", "train.steps: expected an integer, got 'abc'"});
  expect_error([&] { load_run_config(path, {"train.steps=-3"}); },
               {"override 'train.steps=-3'", "train.steps must be >= 1, got -3"});
  expect_error([&] { load_run_config(path, {"optim.lr=[1, 2]"}); }, {"optim.lr: expected a number, got a list"});
  expect_error([&] { load_run_config(path, {"optim.lr=[1"}); }, {"override 'optim.lr=[1'", "not valid YAML"});
}

// ---- error kinds: file, line, key, expectation -----------------------------------------------

TEST(Config, UnknownKeyNamesKeyAndLine) {
  TempDir dir;
  const std::string path = dir.write("run.yaml", std::string(kModel) + "train:\n  stpes: 10\n");
  expect_error([&] { load_run_config(path, {}); }, {path + ":11:3", "train.stpes: unknown key", "did you mean 'steps'"});
  const std::string p2 = dir.write("run2.yaml", std::string(kModel) + "train:\n  zzzzzzzzzz: 10\n");
  expect_error([&] { load_run_config(p2, {}); }, {p2 + ":11:3", "train.zzzzzzzzzz: unknown key", "expected one of", "steps"});
  const std::string p3 = dir.write("run3.yaml", std::string(kModel) + "optimizer:\n  lr: 1\n");
  expect_error([&] { load_run_config(p3, {}); }, {p3 + ":10:1", "optimizer: unknown section", "optim"});
  const std::string p4 = dir.write("run4.yaml", std::string(kModel) + "  dmodel: 3\n");
  expect_error([&] { load_run_config(p4, {}); }, {p4 + ":10:3", "model.dmodel: unknown key", "did you mean 'd_model'"});
  const std::string p5 = dir.write("run5.yaml", std::string(kModel) + "    n_kv_head: 3\n");
  expect_error([&] { load_run_config(p5, {}); },
               {p5 + ":10:5", "model.attention.n_kv_head: unknown key", "did you mean 'n_kv_heads'"});
}

TEST(Config, LoggingSection) {
  TempDir dir;
  const std::string ok = dir.write("ok.yaml", std::string(kModel) + "logging:\n  tensorboard: false\n  peak_tflops: 989\n");
  const RunConfig c = load_run_config(ok, {});
  EXPECT_FALSE(c.logging.tensorboard);
  EXPECT_EQ(c.logging.peak_tflops, 989);
  EXPECT_TRUE(load_run_config(ok, {"logging.tensorboard=true"}).logging.tensorboard);
  const std::string typo = dir.write("typo.yaml", std::string(kModel) + "logging:\n  tensorbord: false\n");
  expect_error([&] { load_run_config(typo, {}); },
               {typo + ":11:3", "logging.tensorbord: unknown key", "did you mean 'tensorboard'"});
  const std::string section = dir.write("section.yaml", std::string(kModel) + "loging:\n  tensorboard: false\n");
  expect_error([&] { load_run_config(section, {}); }, {section + ":10:1", "loging: unknown section", "logging"});
  const std::string word = dir.write("word.yaml", std::string(kModel) + "logging: {tensorboard: sometimes}\n");
  expect_error([&] { load_run_config(word, {}); }, {word + ":10:24", "logging.tensorboard: expected true or false"});
  expect_error([&] { load_run_config(ok, {"logging.peak_tflops=-1"}); }, {"logging.peak_tflops must be >= 0"});
}

TEST(Config, KeyOfAnotherAttentionTypeIsAnError) {
  TempDir dir;
  const std::string path = dir.write("run.yaml", std::string(kModel) + "    d_c: 16\n");
  expect_error([&] { load_run_config(path, {}); },
               {path + ":10:5", "model.attention.d_c is not a key of type gqa", "n_kv_heads, qkv_bias"});
  const std::string p2 = dir.write("mla.yaml", R"(model:
  d_model: 64
  n_layers: 2
  d_ff: 96
  n_heads: 4
  attention: {type: mla, d_c: 8, d_rope: 8, d_nope: 8, d_v: 8, qkv_bias: true}
)");
  expect_error([&] { load_run_config(p2, {}); }, {"model.attention.qkv_bias is not a key of type mla"});
  // Programmatic configs are checked too.
  ModelConfig m = small_model("gqa");
  m.attention.d_latent = 8;
  expect_error([&] { m.validate(); }, {"model.attention.d_latent (8) is not a key of type gqa"});
}

TEST(Config, WrongTypeNamesKeyLineAndValue) {
  TempDir dir;
  const std::string path = dir.write("run.yaml", std::string(kModel) + "train:\n  steps: abc\n");
  expect_error([&] { load_run_config(path, {}); }, {path + ":11:10", "train.steps: expected an integer, got 'abc'"});
  auto bad = [&](const std::string& extra, const std::vector<std::string>& parts) {
    const std::string p = dir.write("bad.yaml", std::string(kModel) + extra);
    expect_error([&] { load_run_config(p, {}); }, parts);
  };
  bad("optim:\n  lr: fast\n", {":11:7", "optim.lr: expected a number, got 'fast'"});
  bad("optim:\n  decay_embeddings: maybe\n", {":11:21", "optim.decay_embeddings: expected true or false, got 'maybe'"});
  bad("train:\n  seed: -1\n", {"train.seed: expected a non-negative integer, got '-1'"});
  bad("train:\n  steps: [1, 2]\n", {":11:10", "train.steps: expected an integer, got a list"});
  bad("train:\n  steps:\n", {"train.steps: expected an integer, got nothing (null)"});
  bad("train:\n  out_dir: {a: 1}\n", {"train.out_dir: expected a string, got a map"});
  bad("train: 5\n", {":10:8", "train: expected a map of keys, got '5'"});
  const std::string p = dir.write("ok.yaml", kModel);
  expect_error([&] { load_run_config(p, {"model.n_layers=99999999999"}); },
               {"model.n_layers: expected an integer that fits in 32 bits"});
  expect_error([&] { load_run_config(p, {"model.attention.type=gtx"}); },
               {"override 'model.attention.type=gtx'",
                "model.attention.type: expected one of mha, gqa, mqa, gva, gha, gta, mla, got 'gtx'", "did you mean 'gta'"});
  const std::string p2 = dir.write("type.yaml", "model:\n  attention:\n    type: MHA\n");
  expect_error([&] { load_run_config(p2, {}); }, {p2 + ":3:11", "got 'MHA'", "did you mean 'mha'"});
}

TEST(Config, BadValuesNameKeyAndLine) {
  TempDir dir;
  auto bad = [&](const std::string& extra, const std::vector<std::string>& parts) {
    const std::string p = dir.write("bad.yaml", std::string(kModel) + extra);
    std::vector<std::string> all = parts;
    all.push_back(p);
    expect_error([&] { load_run_config(p, {}); }, all);
  };
  bad("train:\n  steps: -5\n", {":11:10", "train.steps must be >= 1, got -5"});
  bad("train:\n  batch_size: 0\n", {"train.batch_size must be >= 1"});
  bad("train:\n  seq_len: 0\n", {"train.seq_len must be >= 1"});
  bad("train:\n  log_every: 0\n", {"train.log_every must be >= 1"});
  bad("train:\n  dtype: fp16\n", {":11:10", "train.dtype: expected one of f32, bf16, f64, got 'fp16'"});
  bad("train:\n  device: gpu\n", {"train.device: expected cpu, cuda, cuda:N or auto, got 'gpu'"});
  bad("train:\n  out_dir: ''\n", {"train.out_dir must not be empty"});
  bad("train:\n  batch_size: 4\n  seq_len: 16\n  global_batch_tokens: 100\n",
      {":13:24", "train.global_batch_tokens (100) must be a multiple of train.batch_size*train.seq_len (4*16 = 64)"});
  bad("optim:\n  schedule: cosin\n", {":11:13", "optim.schedule: expected one of cosine, linear, constant, got 'cosin'",
                                      "did you mean 'cosine'"});
  bad("optim:\n  lr: 0\n", {":11:7", "optim.lr must be > 0, got 0"});
  bad("optim:\n  lr: -1e-3\n", {"optim.lr must be > 0"});
  bad("optim:\n  beta2: 1.0\n", {"optim.beta2 must be in [0, 1)"});
  bad("optim:\n  min_lr_ratio: 2\n", {"optim.min_lr_ratio must be in [0, 1]"});
  bad("optim:\n  eps: 0\n", {"optim.eps must be > 0"});
  bad("optim:\n  weight_decay: -0.1\n", {"optim.weight_decay must be >= 0"});
  bad("optim:\n  grad_clip: -1\n", {"optim.grad_clip must be >= 0"});
  bad("optim:\n  warmup_steps: -1\n", {"optim.warmup_steps must be >= 0"});
  bad("checkpoint:\n  every: -1\n", {"checkpoint.every must be >= 0"});
  bad("checkpoint:\n  keep: -2\n", {"checkpoint.keep must be >= 0"});
  bad("eval:\n  batches: 0\n", {"eval.batches must be >= 1"});
  bad("data:\n  mode: shuffled\n", {"data.mode: expected one of random, sequential, got 'shuffled'"});
  bad("  norm_eps: 0\n", {":10:13", "model.norm_eps must be a positive number"});
  const std::string p = dir.write("ok.yaml", kModel);
  expect_error([&] { load_run_config(p, {"model.vocab_size=-1"}); },
               {"override 'model.vocab_size=-1'", "model.vocab_size must be >= 0"});
}

TEST(Config, MissingRequiredModelKeysAreNamed) {
  TempDir dir;
  const std::string path = dir.write("run.yaml", "model:\n  d_model: 64\n  n_layers: 2\n  n_heads: 4\n");
  expect_error([&] { load_run_config(path, {}); }, {path, "model.d_ff must be a positive integer (got 0; is it missing?)"});
  const std::string p2 = dir.write("run2.yaml", "train:\n  steps: 5\n");
  expect_error([&] { load_run_config(p2, {}); }, {p2, "model.d_model must be a positive integer"});
  // Missing attention keys point at the attention section.
  const std::string p3 = dir.write("run3.yaml", "model:\n  d_model: 64\n  n_layers: 2\n  d_ff: 8\n  n_heads: 4\n  attention:\n    type: gqa\n");
  expect_error([&] { load_run_config(p3, {}); },
               {p3 + ":6:3", "model.attention.n_kv_heads must be a positive integer for type gqa"});
}

TEST(Config, MalformedYamlNamesLine) {
  TempDir dir;
  const std::string path = dir.write("bad.yaml", "model:\n  d_model: 64\n  n_layers: [1, 2\ntrain:\n  steps: 3\n");
  expect_error([&] { load_run_config(path, {}); }, {path + ":", "malformed YAML"});
  const std::string p2 = dir.write("bad2.yaml", "model:\n  d_model: 64\n   n_layers: 2\n");
  expect_error([&] { load_run_config(p2, {}); }, {p2 + ":3:", "malformed YAML"});
  const std::string p3 = dir.write("bad3.yaml", "- a\n- b\n");
  expect_error([&] { load_run_config(p3, {}); }, {p3, "expected a map of sections"});
  expect_error([&] { load_run_config(dir / "missing.yaml", {}); }, {"missing.yaml", "cannot open config file"});
}

TEST(Config, DuplicateKeyIsAnError) {
  TempDir dir;
  const std::string path = dir.write("dup.yaml", std::string(kModel) + "train:\n  steps: 1\n  steps: 2\n");
  expect_error([&] { load_run_config(path, {}); }, {path + ":12:3", "train.steps: duplicate key", ":11:3"});
}

// ---- divisibility rules (docs/attention.md, "Validation rules") ---------------------------------

TEST(Config, EveryTypeOfTheGoldenSizesIsValid) {
  for (const auto& t : attention_types()) {
    SCOPED_TRACE(t);
    EXPECT_NO_THROW(small_model(t).validate());
  }
}

TEST(Config, DivisibilityRulesNameKeyAndRule) {
  struct Case {
    std::string type;
    std::function<void(ModelConfig&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"mha", [](ModelConfig& m) { m.n_heads = 5; }, "model.n_heads (5) must divide model.d_model (64)"},
      {"mha", [](ModelConfig& m) { m.d_model = 36, m.n_heads = 4; }, "(the head width) must be even for RoPE"},
      {"mha", [](ModelConfig& m) { m.n_layers = 0; }, "model.n_layers must be a positive integer"},
      {"mha", [](ModelConfig& m) { m.d_ff = -3; }, "model.d_ff must be a positive integer (got -3)"},
      {"mha", [](ModelConfig& m) { m.rope_theta = 0; }, "model.rope_theta must be a positive number"},
      {"gqa", [](ModelConfig& m) { m.attention.n_kv_heads = 3; }, "model.attention.n_kv_heads (3) must divide model.n_heads (4)"},
      {"gqa", [](ModelConfig& m) { m.attention.n_kv_heads = 0; }, "model.attention.n_kv_heads must be a positive integer for type gqa"},
      {"gqa", [](ModelConfig& m) { m.attention.n_kv_heads = 8; }, "model.attention.n_kv_heads (8) must divide model.n_heads (4)"},
      {"gva", [](ModelConfig& m) { m.attention.n_q_heads = 3; }, "model.attention.n_q_heads (3) must divide model.n_heads (4)"},
      {"gva", [](ModelConfig& m) { m.attention.n_k_heads = 3; }, "model.attention.n_k_heads (3) must divide model.attention.n_q_heads (2)"},
      {"gva", [](ModelConfig& m) { m.attention.n_k_heads = 0; }, "model.attention.n_k_heads must be a positive integer for type gva"},
      {"gha", [](ModelConfig& m) { m.attention.n_v_heads = 3; }, "model.attention.n_v_heads (3) must divide model.n_heads (4)"},
      {"gha", [](ModelConfig& m) { m.attention.n_v_heads = 0; }, "model.attention.n_v_heads must be a positive integer for type gha"},
      {"gha", [](ModelConfig& m) { m.attention.n_q_heads = 8; }, "model.attention.n_q_heads (8) must divide model.n_heads (4)"},
      {"gta", [](ModelConfig& m) { m.attention.n_k_heads = 3, m.attention.n_q_heads = 4; }, "model.attention.n_k_heads (3) must divide model.attention.n_q_heads (4)"},
      {"gta", [](ModelConfig& m) { m.attention.n_v_heads = 3, m.attention.n_q_heads = 4, m.attention.d_latent = 8; }, "model.attention.n_v_heads (3) must divide model.attention.n_q_heads (4)"},
      {"gta", [](ModelConfig& m) { m.attention.d_latent = 24; }, "model.d_model (64) must equal n_q_heads*e*d_latent for an integer e"},
      {"gta", [](ModelConfig& m) { m.attention.n_q_heads = 3, m.attention.n_k_heads = 1, m.attention.n_v_heads = 1; }, "model.d_model (64) must equal n_q_heads*e*d_latent"},
      {"gta", [](ModelConfig& m) { m.attention.d_qk = 15; }, "model.attention.d_qk (15) must be even for RoPE"},
      {"gta", [](ModelConfig& m) { m.attention.d_qk = 0; }, "model.attention.d_qk must be a positive integer for type gta"},
      {"gta", [](ModelConfig& m) { m.attention.d_latent = 0; }, "model.attention.d_latent must be a positive integer for type gta"},
      {"gta", [](ModelConfig& m) { m.attention.n_v_heads = 0; }, "model.attention.n_v_heads must be a positive integer for type gta"},
      {"mla", [](ModelConfig& m) { m.attention.d_rope = 7; }, "model.attention.d_rope (7) must be even for RoPE"},
      {"mla", [](ModelConfig& m) { m.attention.d_c = 0; }, "model.attention.d_c must be a positive integer for type mla"},
      {"mla", [](ModelConfig& m) { m.attention.d_nope = 0; }, "model.attention.d_nope must be a positive integer"},
      {"mla", [](ModelConfig& m) { m.attention.d_v = -1; }, "model.attention.d_v must be a positive integer"},
      {"mla", [](ModelConfig& m) { m.attention.d_rope = 0; }, "model.attention.d_rope must be a positive integer"},
      {"mla", [](ModelConfig& m) { m.attention.type = "xla"; }, "model.attention.type: expected one of"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.type + ": " + c.message);
    ModelConfig m = small_model(c.type);
    c.edit(m);
    expect_error([&] { m.validate(); }, {c.message});
  }
  // GTA with e = 2 and grouped keys/values is fine; GHA with n_v unrelated to n_q too.
  ModelConfig g = small_model("gta");
  g.attention.n_q_heads = 4, g.attention.n_k_heads = 2, g.attention.n_v_heads = 4, g.attention.d_latent = 8;
  EXPECT_NO_THROW(g.validate());
  EXPECT_EQ(g.gta_expansion(), 2);
  ModelConfig h = small_model("gha");
  h.attention.n_v_heads = 4;
  EXPECT_NO_THROW(h.validate());
}

TEST(Config, DivisibilityErrorsInFilesNameTheLine) {
  TempDir dir;
  const std::string path = dir.write("gta.yaml", R"(model:
  d_model: 64
  n_layers: 2
  d_ff: 96
  n_heads: 4
  attention:
    type: gta
    n_q_heads: 3
    n_k_heads: 1
    n_v_heads: 1
    d_qk: 16
    d_latent: 16
)");
  expect_error([&] { load_run_config(path, {}); }, {path + ":12:15", "model.d_model (64) must equal n_q_heads*e*d_latent"});
  expect_error([&] { load_run_config(path, {"model.attention.n_q_heads=4", "model.attention.n_k_heads=3"}); },
               {"override 'model.attention.n_k_heads=3'", "model.attention.n_k_heads (3) must divide model.attention.n_q_heads (4)"});
}

// ---- effective values --------------------------------------------------------------------------

TEST(Config, EffectiveHeadCountsAndWidths) {
  auto m = small_model("mha");
  EXPECT_EQ(m.head_dim(), 16);
  EXPECT_EQ(m.n_kv(), 4);
  EXPECT_EQ(m.kv_cache_elems_per_token_per_layer(), 128);
  m = small_model("mqa");
  EXPECT_EQ(m.n_kv(), 1);
  EXPECT_EQ(m.n_q(), 4);
  EXPECT_EQ(m.kv_cache_elems_per_token_per_layer(), 32);
  m = small_model("gqa");
  EXPECT_EQ(m.n_kv(), 2);
  EXPECT_EQ(m.n_v(), 2);
  m = small_model("gva");
  EXPECT_EQ(m.n_q(), 2);
  EXPECT_EQ(m.n_k(), 1);
  EXPECT_EQ(m.n_v(), 4);
  m = small_model("gha");
  EXPECT_EQ(m.n_v(), 1);
  m = small_model("gta");
  EXPECT_EQ(m.qk_dim(), 16);
  EXPECT_EQ(m.v_dim(), 16);
  EXPECT_EQ(m.rope_dim(), 16);
  EXPECT_EQ(m.gta_expansion(), 2);
  EXPECT_TRUE(m.has_qkv_bias());
  m = small_model("mla");
  EXPECT_EQ(m.qk_dim(), 24);
  EXPECT_EQ(m.v_dim(), 16);
  EXPECT_EQ(m.rope_dim(), 8);
  EXPECT_FALSE(m.has_qkv_bias());
  EXPECT_EQ(m.gta_expansion(), 0);

  // The paper's GTA-1B and its GQA peer (docs/attention.md, "Paper configurations"): cache 192 vs 640.
  ModelConfig g;
  g.vocab_size = 128256, g.d_model = 1280, g.n_layers = 54, g.d_ff = 3584, g.n_heads = 20;
  g.attention.type = "gta";
  g.attention.n_q_heads = 5, g.attention.n_k_heads = 1, g.attention.n_v_heads = 1, g.attention.d_qk = 64,
  g.attention.d_latent = 128;
  EXPECT_NO_THROW(g.validate());
  EXPECT_EQ(g.gta_expansion(), 2);
  EXPECT_EQ(g.kv_cache_elems_per_token_per_layer(), 192);
  ModelConfig q = g;
  q.attention = AttentionConfig{};
  q.attention.type = "gqa";
  q.attention.n_kv_heads = 5;
  EXPECT_NO_THROW(q.validate());
  EXPECT_EQ(q.kv_cache_elems_per_token_per_layer(), 640);
}

TEST(Config, GradAccumulationSteps) {
  TrainConfig t;
  t.batch_size = 4, t.seq_len = 16;
  EXPECT_EQ(t.grad_accum_steps(1), 1);
  t.global_batch_tokens = 512;
  EXPECT_EQ(t.grad_accum_steps(1), 8);
  EXPECT_EQ(t.grad_accum_steps(2), 4);
  EXPECT_EQ(t.global_tokens(2), 512);
  expect_error([&] { t.grad_accum_steps(3); },
               {"train.global_batch_tokens (512) must be a multiple of train.batch_size*train.seq_len*ranks", "4*16*3 = 192"});
  t.global_batch_tokens = 64;
  expect_error([&] { t.grad_accum_steps(2); }, {"train.global_batch_tokens (64)"});
}

// ---- includes ----------------------------------------------------------------------------------

TEST(Config, BaseIncludeMergesAndIncludingFileWins) {
  TempDir dir;
  dir.write("configs/base.yaml", std::string(kModel) + R"(train:
  steps: 100
  seq_len: 64
optim:
  lr: 1e-3
)");
  const std::string child = dir.write("configs/ablation/gta.yaml", R"(base: ../base.yaml
model:
  attention:
    type: gta
    n_q_heads: 2
    n_k_heads: 1
    n_v_heads: 1
    d_qk: 16
    d_latent: 16
train:
  steps: 200
)");
  RunConfig c = load_run_config(child, {});
  EXPECT_EQ(c.train.steps, 200);   // the including file wins
  EXPECT_EQ(c.train.seq_len, 64);  // inherited
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.model.d_model, 64);
  EXPECT_EQ(c.model.attention.type, "gta");
  EXPECT_EQ(c.model.attention.n_kv_heads, 0);  // the base's gqa key is dropped with the type change
  EXPECT_EQ(c.model.gta_expansion(), 2);

  // Chained includes, overrides on top.
  const std::string grand = dir.write("configs/ablation/gta_long.yaml", "base: gta.yaml\ntrain:\n  seq_len: 128\n");
  RunConfig g = load_run_config(grand, {"train.steps=3"});
  EXPECT_EQ(g.train.seq_len, 128);
  EXPECT_EQ(g.train.steps, 3);
  EXPECT_EQ(g.model.attention.type, "gta");

  // Same type in the child: keys merge key by key.
  const std::string same = dir.write("configs/gqa4.yaml", "base: base.yaml\nmodel:\n  attention:\n    n_kv_heads: 4\n");
  RunConfig s = load_run_config(same, {});
  EXPECT_EQ(s.model.attention.type, "gqa");
  EXPECT_EQ(s.model.n_kv(), 4);
}

TEST(Config, BaseIncludeErrorsNameTheRightFile) {
  TempDir dir;
  const std::string base = dir.write("base.yaml", std::string(kModel) + "train:\n  stpes: 1\n");
  const std::string child = dir.write("child.yaml", "base: base.yaml\ntrain:\n  seq_len: 8\n");
  expect_error([&] { load_run_config(child, {}); }, {base + ":11:3", "train.stpes: unknown key"});
  // A value from the base that fails validation names the base file's line.
  dir.write("base2.yaml", std::string(kModel) + "optim:\n  lr: -1\n");
  const std::string child2 = dir.write("child2.yaml", "base: base2.yaml\n");
  expect_error([&] { load_run_config(child2, {}); }, {"base2.yaml:11:7", "optim.lr must be > 0"});
  // Missing base file.
  const std::string child3 = dir.write("child3.yaml", "base: nowhere.yaml\n");
  expect_error([&] { load_run_config(child3, {}); }, {child3 + ":1:7", "base:", "nowhere.yaml", "cannot open"});
  // Cycles.
  const std::string a = dir.write("a.yaml", "base: b.yaml\n");
  dir.write("b.yaml", "base: a.yaml\n");
  expect_error([&] { load_run_config(a, {}); }, {"include cycle"});
  // base must be a path.
  const std::string child4 = dir.write("child4.yaml", "base: [a, b]\n");
  expect_error([&] { load_run_config(child4, {}); }, {child4 + ":1:7", "base: expected the path of a YAML file"});
}

// ---- model-only files --------------------------------------------------------------------------

TEST(Config, LoadModelConfig) {
  TempDir dir;
  const std::string path = dir.write("model.yaml", kModel);
  ModelConfig m = load_model_config(path);
  EXPECT_EQ(m.d_model, 64);
  EXPECT_EQ(m.attention.type, "gqa");
  EXPECT_EQ(load_model_config(path, {"model.n_layers=6"}).n_layers, 6);
  const std::string none = dir.write("none.yaml", "train:\n  steps: 3\n");
  expect_error([&] { load_model_config(none); }, {none, "no model: section"});
  const std::string bad = dir.write("bad.yaml", std::string(kModel) + "    n_kv_heads: 3\n");
  expect_error([&] { load_model_config(bad); }, {"duplicate key"});
}

// ---- round trips ---------------------------------------------------------------------------------

TEST(Config, JsonRoundTripIsExact) {
  RunConfig c;
  c.model = small_model("gta");
  c.model.norm_eps = 0.1 + 0.2;  // not representable in short decimal
  c.model.rope_theta = 500000.123456789;
  c.model.tie_embeddings = false;
  c.data = {"tr/*.h5", "va.h5", "tok.model", "sequential"};
  c.train.steps = 123456789012;
  c.train.seed = UINT64_MAX - 5;
  c.train.global_batch_tokens = c.train.batch_size * c.train.seq_len * 3;
  c.train.device = "cuda:1";
  c.train.dtype = "bf16";
  c.optim.lr = 1.0 / 3.0;
  c.optim.eps = 1e-300;
  c.optim.schedule = "constant";
  c.optim.decay_norms_and_biases = true;
  c.checkpoint = {7, 0};
  c.eval = {0, 5};
  c.logging = {false, 1.0 / 7.0};
  const nlohmann::json j = to_json(c);
  EXPECT_EQ(run_config_from_json(j), c);
  EXPECT_EQ(run_config_from_json(nlohmann::json::parse(j.dump())), c);
  for (const auto& t : attention_types()) {
    SCOPED_TRACE(t);
    RunConfig r;
    r.model = small_model(t);
    EXPECT_EQ(run_config_from_json(nlohmann::json::parse(to_json(r).dump())), r);
    EXPECT_EQ(model_config_from_json(nlohmann::json::parse(to_json(r.model).dump())), r.model);
  }
  // Only the keys of the type are written.
  const nlohmann::json a = to_json(small_model("mla"))["attention"];
  EXPECT_EQ(a, nlohmann::json::parse(R"({"type": "mla", "d_c": 24, "d_rope": 8, "d_nope": 16, "d_v": 16})"));
}

TEST(Config, JsonErrorsNameTheSource) {
  nlohmann::json j = to_json(small_model("gqa"));
  j["attention"]["d_c"] = 3;
  expect_error([&] { model_config_from_json(j, "ckpt/model.safetensors"); },
               {"ckpt/model.safetensors", "model.attention.d_c is not a key of type gqa"});
  j = to_json(small_model("gqa"));
  j["d_model"] = "big";
  expect_error([&] { model_config_from_json(j, "src"); }, {"src: model.d_model: expected an integer, got 'big'"});
  j = to_json(small_model("gqa"));
  j["n_heads"] = 3;
  expect_error([&] { model_config_from_json(j, "src"); }, {"src: model.n_heads (3) must divide model.d_model (64)"});
  RunConfig rc;
  rc.model = small_model("mha");
  nlohmann::json r = to_json(rc);
  r["base"] = "x.yaml";
  expect_error([&] { run_config_from_json(r, "ckpt"); }, {"ckpt", "base: unknown section"});
}

TEST(Config, YamlRoundTrip) {
  RunConfig c;
  c.model = small_model("gta");
  c.model.norm_eps = 0.1 + 0.2;
  c.data = {"a b/c*.h5", "true", "", "random"};  // strings that look like other YAML types survive
  c.train.out_dir = "runs/x: y";
  c.optim.lr = 1.0 / 3.0;
  c.train.seed = UINT64_MAX;
  const std::string text = to_yaml(c);
  EXPECT_EQ(parse_run_config(text, "roundtrip.yaml"), c) << text;
}

// ---- golden files ------------------------------------------------------------------------------

TEST(Config, ReadsTheGoldenModelConfigs) {
  const std::string dir = GTA_SOURCE_DIR "/tests/golden";
  if (!fs::exists(dir + "/gta.safetensors")) GTEST_SKIP() << "no golden files in " << dir;
  for (const char* type : {"mha", "gqa", "mla", "gta", "gva", "gha"}) {
    SCOPED_TRACE(type);
    const std::string path = dir + "/" + type + ".safetensors";
    auto f = gta::io::load_safetensors(path);
    const nlohmann::json j = nlohmann::json::parse(f.metadata.at("config"));
    ModelConfig m = model_config_from_json(j, path);
    EXPECT_EQ(m.attention.type, type);
    EXPECT_EQ(m.vocab_size, 61);
    // JSON round trip reproduces the file's config exactly.
    EXPECT_EQ(to_json(m), j);
    // The cache size of docs/attention.md ("KV cache") matches the file's metadata.
    EXPECT_EQ(m.kv_cache_elems_per_token_per_layer(), std::stoll(f.metadata.at("kv_cache_elems_per_token_per_layer")));
    // The parameter count matches the parameters stored in the file.
    int64_t params = 0, grads = 0;
    for (const auto& [name, t] : f.tensors) {
      if (name.rfind("model.", 0) == 0 || name == "lm_head.weight") params += t.numel();
      if (name.rfind("grad.", 0) == 0) grads += t.numel();
    }
    EXPECT_EQ(m.num_parameters(), params);
    EXPECT_EQ(m.num_parameters(), grads);
  }
}
