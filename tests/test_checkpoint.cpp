// Checkpoints: save/load round trip (bit-exact tensors, equal JSON, resume equals continuing),
// keep-K pruning, latest_checkpoint ignoring temporary and incomplete directories, clear errors
// for truncated/missing/other-version files with the older checkpoints intact, failing saves that
// leave everything as it was, loading weights from a checkpoint, a run or a bare file, and SHA-256
// digests that refuse a flipped byte.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "optim/adamw.h"
#include "test_util.h"
#include "train/checkpoint.h"

using namespace gta;
namespace fs = std::filesystem;
using gta_test::bits_equal;
using gta_test::error_of;
using gta_test::random_tokens;
using gta_test::TempDir;
using gta_test::tiny_gqa_config;

namespace {

void train_steps(nn::Model& m, optim::AdamW& opt, int from, int to) {
  for (int s = from; s < to; ++s) {
    opt.zero_grad();
    m.loss(random_tokens(2, 7, 17, 500 + s)).backward();
    opt.step(3e-3);
  }
}

// A fresh, empty directory per test (tmp_), removed afterwards.
class Checkpoint : public ::testing::Test {
 protected:
  std::string out() const { return tmp_.path().string(); }
  fs::path root() const { return tmp_.path() / "checkpoints"; }

  train::TrainerState state(int64_t step) const {
    train::TrainerState st;
    st.step = step;
    st.loader = {{"cursor", 12 * step}, {"seed", 7}, {"mode", "random"}, {"fingerprint", "abc"}};
    Rng r(42);
    for (int i = 0; i < 3; ++i) r.normal();  // leaves a cached normal in the state
    st.rng = r.state();
    config::RunConfig rc;
    rc.model = cfg_;
    st.config = config::to_json(rc);
    st.extra = {{"tokens_seen", 1234 * step}, {"loss", 2.5}};
    return st;
  }

  std::string save(int64_t step, int64_t keep) {
    return train::save_checkpoint(out(), model_, opt_, state(step), keep);
  }

  TempDir tmp_;
  config::ModelConfig cfg_ = tiny_gqa_config();
  nn::Model model_{cfg_, DType::f32, 21};
  optim::AdamW opt_{model_.params().all(), config::OptimConfig{}};
};

}  // namespace

TEST_F(Checkpoint, RoundTripIsBitExactAndResumeEqualsContinuing) {
  train_steps(model_, opt_, 0, 3);
  const std::string d = save(3, 0);
  EXPECT_EQ(fs::path(d), root() / "step_000003");
  EXPECT_TRUE(fs::is_regular_file(fs::path(d) / "model.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(fs::path(d) / "optimizer.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(fs::path(d) / "trainer.json"));

  const train::Checkpoint ck = train::load_checkpoint(d);
  EXPECT_EQ(ck.dir, d);
  EXPECT_EQ(ck.model_config, cfg_);
  ASSERT_EQ(ck.model.size(), model_.params().all().size());
  for (const auto& [n, t] : model_.params().all()) EXPECT_TRUE(bits_equal(ck.model.at(n), t)) << n;
  const auto live = opt_.state();
  EXPECT_EQ(ck.optimizer.step, 3);
  ASSERT_EQ(ck.optimizer.tensors.size(), live.tensors.size());
  for (const auto& [n, t] : live.tensors) EXPECT_TRUE(bits_equal(ck.optimizer.tensors.at(n), t)) << n;
  const train::TrainerState want = state(3);
  EXPECT_EQ(ck.trainer.step, 3);
  EXPECT_EQ(ck.trainer.loader, want.loader);
  EXPECT_EQ(ck.trainer.rng, want.rng);
  EXPECT_EQ(ck.trainer.config, want.config);
  EXPECT_EQ(ck.trainer.extra, want.extra);
  EXPECT_EQ(config::run_config_from_json(ck.trainer.config).model, cfg_);
  // The model file carries its config for `gta eval`.
  const auto header = io::read_safetensors_header(fs::path(d) / "model.safetensors");
  EXPECT_EQ(config::model_config_from_json(nlohmann::json::parse(header.metadata.at("config"))), cfg_);

  // Resume into a differently initialised model: continuing both gives identical bits.
  nn::Model other(cfg_, DType::f32, 77);
  optim::AdamW opt2(other.params().all(), config::OptimConfig{});
  train::restore_checkpoint(ck, other.params(), opt2);
  EXPECT_EQ(opt2.step_count(), 3);
  Rng resumed(0);
  resumed.set_state(ck.trainer.rng);
  Rng original(42);
  for (int i = 0; i < 3; ++i) original.normal();
  EXPECT_EQ(resumed.normal(), original.normal());
  train_steps(model_, opt_, 3, 5);
  train_steps(other, opt2, 3, 5);
  for (const auto& [n, t] : model_.params().all()) EXPECT_TRUE(bits_equal(other.params().get(n), t)) << n;
}

TEST_F(Checkpoint, KeepsTheNewestK) {
  for (int64_t s = 1; s <= 5; ++s) save(s * 10, 2);
  auto all = train::list_checkpoints(out());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].step, 40);
  EXPECT_EQ(all[1].step, 50);
  EXPECT_FALSE(fs::exists(root() / "step_000030"));
  EXPECT_EQ(*train::latest_checkpoint(out()), (root() / "step_000050").string());
  // keep 0 keeps everything.
  for (int64_t s = 6; s <= 8; ++s) save(s * 10, 0);
  EXPECT_EQ(train::list_checkpoints(out()).size(), 5u);
  // Steps beyond six digits still sort by number.
  save(1234567, 0);
  EXPECT_EQ(*train::latest_checkpoint(out()), (root() / "step_1234567").string());
  // Only complete checkpoint directories remain: no temporaries.
  for (const auto& e : fs::directory_iterator(root()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST_F(Checkpoint, LatestIgnoresTemporaryAndIncompleteDirectories) {
  EXPECT_FALSE(train::latest_checkpoint(out()).has_value());
  EXPECT_TRUE(train::list_checkpoints(out()).empty());
  const std::string good = save(5, 0);
  // A complete-looking temporary of a later step, an incomplete later step, a stray file, and a
  // directory whose name only resembles a checkpoint.
  fs::copy(good, root() / "step_000009.tmp-123", fs::copy_options::recursive);
  fs::create_directories(root() / "step_000010");
  fs::copy_file(fs::path(good) / "model.safetensors", root() / "step_000010" / "model.safetensors");
  std::ofstream(root() / "step_000011") << "not a directory";
  fs::copy(good, root() / "step_00001x", fs::copy_options::recursive);
  EXPECT_EQ(*train::latest_checkpoint(out()), good);
  ASSERT_EQ(train::list_checkpoints(out()).size(), 1u);
  // Loading the incomplete one says which file is missing.
  const std::string msg = error_of([&] { train::load_checkpoint((root() / "step_000010").string()); });
  EXPECT_NE(msg.find("trainer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
}

TEST_F(Checkpoint, StaleTemporaryOfADeadProcessIsRemovedBySave) {
  save(1, 0);
  const fs::path stale = root() / "step_000002.tmp-999999999";  // above any pid_max: not running
  fs::create_directories(stale);
  std::ofstream(stale / "model.safetensors") << "partial";
  save(2, 0);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_EQ(train::list_checkpoints(out()).size(), 2u);
}

TEST_F(Checkpoint, TruncatedModelFileGivesAClearErrorAndOthersSurvive) {
  save(1, 0);
  train_steps(model_, opt_, 0, 1);
  const std::string d2 = save(2, 0);
  const fs::path mf = fs::path(d2) / "model.safetensors";
  fs::resize_file(mf, fs::file_size(mf) / 2);
  const std::string msg = error_of([&] { train::load_checkpoint(d2); });
  EXPECT_NE(msg.find(mf.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("step_000001"), std::string::npos) << msg;  // points at the fallback
  // The older checkpoint is intact and loads.
  const train::Checkpoint ck1 = train::load_checkpoint((root() / "step_000001").string());
  EXPECT_EQ(ck1.trainer.step, 1);
  // A later save still works and pruning keeps going.
  save(3, 2);
  EXPECT_EQ(train::list_checkpoints(out()).back().step, 3);
}

TEST_F(Checkpoint, CorruptTrainerJsonAndOtherVersionsAreExplained) {
  const std::string d = save(4, 0);
  const fs::path tj = fs::path(d) / "trainer.json";
  nlohmann::json j = nlohmann::json::parse(std::ifstream(tj));
  j["version"] = 99;
  std::ofstream(tj) << j.dump();
  std::string msg = error_of([&] { train::load_checkpoint(d); });
  EXPECT_NE(msg.find("version 99"), std::string::npos) << msg;
  EXPECT_NE(msg.find("newer"), std::string::npos) << msg;
  EXPECT_NE(msg.find(tj.string()), std::string::npos) << msg;
  std::ofstream(tj) << "{\"format\": \"gta-checkpoint\", \"vers";
  msg = error_of([&] { train::load_checkpoint(d); });
  EXPECT_NE(msg.find(tj.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;
  fs::remove(tj);
  msg = error_of([&] { train::load_checkpoint(d); });
  EXPECT_NE(msg.find(tj.string()), std::string::npos) << msg;
  // Optimizer file of another model is refused on restore, naming the file.
  const std::string d5 = save(5, 0);
  train::Checkpoint ck = train::load_checkpoint(d5);
  ck.optimizer.tensors.erase("model.norm.weight.exp_avg");
  nn::Model m(cfg_, DType::f32, 1);
  optim::AdamW o(m.params().all(), config::OptimConfig{});
  msg = error_of([&] { train::restore_checkpoint(ck, m.params(), o); });
  EXPECT_NE(msg.find("optimizer.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.norm.weight.exp_avg"), std::string::npos) << msg;
}

TEST_F(Checkpoint, FailingSaveLeavesExistingCheckpointsUntouched) {
  const std::string d1 = save(1, 1);
  const auto before = io::load_safetensors((fs::path(d1) / "model.safetensors").string());
  train::TrainerState bad = state(2);
  bad.extra["note"] = std::string("\xff\xfe not utf-8");  // trainer.json cannot be serialised
  const std::string msg = error_of([&] { train::save_checkpoint(out(), model_, opt_, bad, 1); });
  EXPECT_NE(msg.find("step_000002"), std::string::npos) << msg;
  EXPECT_NE(msg.find("untouched"), std::string::npos) << msg;
  // Nothing new, nothing pruned, no temporary left.
  auto all = train::list_checkpoints(out());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].step, 1);
  for (const auto& e : fs::directory_iterator(root())) EXPECT_EQ(e.path(), fs::path(d1)) << e.path();
  const train::Checkpoint ck = train::load_checkpoint(d1);
  for (const auto& [n, t] : before.tensors) EXPECT_TRUE(bits_equal(ck.model.at(n), t)) << n;
  // A run directory that cannot hold checkpoints is named.
  const fs::path blocked = tmp_.path() / "blocked";
  fs::create_directories(blocked);
  std::ofstream(blocked / "checkpoints") << "a file";
  const std::string msg2 = error_of([&] { train::save_checkpoint(blocked.string(), model_, opt_, state(1), 1); });
  EXPECT_NE(msg2.find((blocked / "checkpoints").string()), std::string::npos) << msg2;
}

TEST_F(Checkpoint, SavingTheSameStepAgainReplacesIt) {
  save(3, 0);
  train_steps(model_, opt_, 0, 1);
  train::TrainerState st = state(3);
  st.extra["again"] = true;
  const std::string d = train::save_checkpoint(out(), model_, opt_, st, 0);
  const train::Checkpoint ck = train::load_checkpoint(d);
  EXPECT_EQ(ck.trainer.extra.at("again"), true);
  EXPECT_EQ(ck.optimizer.step, 1);
  for (const auto& [n, t] : model_.params().all()) EXPECT_TRUE(bits_equal(ck.model.at(n), t)) << n;
  int entries = 0;
  for (const auto& e : fs::directory_iterator(root())) ++entries, (void)e;
  EXPECT_EQ(entries, 1);
}

TEST_F(Checkpoint, LoadsWeightsFromACheckpointARunOrABareFile) {
  train_steps(model_, opt_, 0, 2);
  const std::string d = save(2, 0);
  for (const std::string& path : {d, out(), (fs::path(d) / "model.safetensors").string()}) {
    SCOPED_TRACE(path);
    const train::ModelWeights w = train::load_model_weights(path);
    ASSERT_TRUE(w.config.has_value());
    EXPECT_EQ(*w.config, cfg_);
    EXPECT_EQ(w.step, 2);
    auto m = train::load_model(path);
    for (const auto& [n, t] : model_.params().all()) EXPECT_TRUE(bits_equal(m->params().get(n), t)) << n;
  }
  // A bare file without config metadata needs a config from the caller.
  std::map<std::string, Tensor> weights;
  for (const auto& [n, t] : model_.params().all()) weights[n] = t.detach();
  const std::string bare = (tmp_.path() / "bare.safetensors").string();
  io::save_safetensors(bare, weights);
  EXPECT_FALSE(train::load_model_weights(bare).config.has_value());
  const std::string msg = error_of([&] { train::load_model(bare); });
  EXPECT_NE(msg.find(bare), std::string::npos) << msg;
  EXPECT_NE(msg.find("config"), std::string::npos) << msg;
  auto m = train::load_model(bare, DType::f32, cfg_);
  EXPECT_TRUE(bits_equal(m->params().get("model.norm.weight"), model_.params().get("model.norm.weight")));
  // The header-only look agrees with the full load, without reading the tensors.
  for (const std::string& path : {d, out(), bare}) {
    SCOPED_TRACE(path);
    const train::ModelWeightsInfo info = train::resolve_model_weights(path);
    const train::ModelWeights w = train::load_model_weights(path);
    EXPECT_EQ(info.source, w.source);
    EXPECT_EQ(info.config, w.config);
    EXPECT_EQ(info.step, w.step);
  }
  EXPECT_EQ(train::resolve_model_weights(out()).source, (fs::path(d) / "model.safetensors").string());
  EXPECT_EQ(train::resolve_model_weights(bare).step, -1);
  // An exported model: a directory holding model.safetensors alone, accepted when named explicitly.
  fs::create_directories(tmp_.path() / "export");
  fs::copy_file(fs::path(d) / "model.safetensors", tmp_.path() / "export/model.safetensors");
  EXPECT_EQ(train::load_model_weights((tmp_.path() / "export").string()).source,
            (tmp_.path() / "export/model.safetensors").string());
  // Neither a checkpoint nor a run.
  const std::string msg2 = error_of([&] { train::load_model_weights(tmp_.path().string() + "/nothing"); });
  EXPECT_NE(msg2.find("nothing"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("no such file or directory"), std::string::npos) << msg2;
  fs::create_directories(tmp_.path() / "empty_run");
  const std::string msg3 = error_of([&] { train::load_model_weights((tmp_.path() / "empty_run").string()); });
  EXPECT_NE(msg3.find("empty_run"), std::string::npos) << msg3;
  EXPECT_NE(msg3.find("not a checkpoint"), std::string::npos) << msg3;
  // A run whose only checkpoint directory is incomplete (the one rule of list_checkpoints: all
  // three files) has no checkpoint to load from, even though model.safetensors is there.
  const fs::path partial = tmp_.path() / "partial_run/checkpoints" / train::checkpoint_dir_name(5);
  fs::create_directories(partial);
  fs::copy_file(fs::path(d) / "model.safetensors", partial / "model.safetensors");
  const std::string msg4 = error_of([&] { train::resolve_model_weights((tmp_.path() / "partial_run").string()); });
  EXPECT_NE(msg4.find("partial_run"), std::string::npos) << msg4;
  EXPECT_NE(msg4.find("has no complete checkpoint"), std::string::npos) << msg4;
  // ... while that directory itself, named explicitly, is read as it is.
  EXPECT_EQ(train::resolve_model_weights(partial.string()).source, (partial / "model.safetensors").string());
}

TEST_F(Checkpoint, AFlippedByteIsRefusedUnlessVerificationIsOff) {
  train_steps(model_, opt_, 0, 1);
  const std::string d = save(1, 0);
  const nlohmann::json tj = nlohmann::json::parse(std::ifstream(fs::path(d) / "trainer.json"));
  for (const char* f : {"model.safetensors", "optimizer.safetensors"}) {
    SCOPED_TRACE(f);
    const fs::path p = fs::path(d) / f;
    EXPECT_EQ(tj.at("sha256").at(f), sha256_file(p.string()));
    // One bit of the last tensor's data: the header still parses, the file has its size.
    const std::string good = gta_test::read_file(p.string());
    std::string bad = good;
    bad[bad.size() - 3] ^= 0x10;
    gta_test::write_file(p.string(), bad);
    const std::string msg = error_of([&] { train::load_checkpoint(d); });
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("SHA-256"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--no-verify"), std::string::npos) << msg;
    EXPECT_NO_THROW(train::load_checkpoint(d, /*verify=*/false));
    if (std::string(f) == "model.safetensors") {
      // Inference reads a checkpoint's weights through the same check.
      for (const std::string& path : {d, out(), p.string()}) {
        SCOPED_TRACE(path);
        EXPECT_NE(error_of([&] { train::load_model_weights(path); }).find("SHA-256"), std::string::npos);
        EXPECT_NO_THROW(train::load_model(path, DType::f32, std::nullopt, /*verify=*/false));
      }
    }
    gta_test::write_file(p.string(), good);
  }
  EXPECT_NO_THROW(train::load_checkpoint(d));
}

TEST_F(Checkpoint, TrainerJsonStepMustMatchTheDirectoryName) {
  const std::string d = save(2, 0);
  fs::rename(d, root() / "step_000007");
  const std::string msg = error_of([&] { train::load_checkpoint((root() / "step_000007").string()); });
  EXPECT_NE(msg.find("trainer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("named for step 7"), std::string::npos) << msg;
}
