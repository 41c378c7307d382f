// TensorBoard event files: the TFRecord framing and its CRC-32C, the writer and its resume rules,
// and a short training run whose events, read back with the same protobuf messages, equal its
// metrics.jsonl, also across a --resume (tensorboard's own reader: tests/cli/tensorboard_read.sh).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/prepare.h"
#include "test_util.h"
#include "train/tensorboard.h"
#include "train/tensorboard_event.pb.h"
#include "train/tfrecord.h"
#include "train/trainer.h"

namespace {

namespace fs = std::filesystem;
using gta::train::TensorBoardWriter;
using gta_test::TempDir;
namespace tfrecord = gta::train::tfrecord;

// {step: {tag: value}} of the summary events of a file; every record must be sound.
using Scalars = std::map<int64_t, std::map<std::string, float>>;
Scalars scalars_of(const std::string& file) {
  std::string damage;
  const auto events = gta::train::read_event_file(file, &damage);
  EXPECT_EQ(damage, "") << file;
  EXPECT_FALSE(events.empty());
  if (!events.empty()) {
    EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  }
  Scalars s;
  int64_t last = -1;
  for (const auto& e : events) {
    if (!e.has_summary()) continue;
    EXPECT_GE(e.step(), last) << "steps out of order in " << file;
    last = e.step();
    for (const auto& v : e.summary().value()) {
      EXPECT_EQ(s[e.step()].count(v.tag()), 0u) << "step " << e.step() << " has " << v.tag() << " twice";
      s[e.step()][v.tag()] = v.simple_value();
    }
  }
  return s;
}

// The same scalars from metrics.jsonl: each number tensorboard_tags() names, rounded to float.
Scalars scalars_of_metrics(const std::string& path) {
  Scalars s;
  std::istringstream in(gta_test::read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    const auto r = nlohmann::json::parse(line);
    for (const auto& [key, tag] : gta::train::tensorboard_tags())
      if (r.contains(key) && r[key].is_number()) s[r["step"].get<int64_t>()][tag] = r[key].get<float>();
  }
  return s;
}

std::string only_event_file(const std::string& dir) {
  const auto files = gta::train::event_files(dir);
  EXPECT_EQ(files.size(), 1u) << dir;
  return files.empty() ? "" : files[0];
}

nlohmann::json train_record(int64_t step) {
  return {{"step", step}, {"event", "train"}, {"loss", 10.0 / step}, {"lr", 1e-3}, {"grad_norm", 0.5 + step},
          {"tokens", 256.0 * step}, {"tokens_per_s", 1234.5}};
}

TEST(TfRecord, Crc32cIsCastagnoli) {
  // The CRC-32C check value (RFC 3720's polynomial over the digits 1-9) and iSCSI's 32 zero bytes.
  EXPECT_EQ(tfrecord::crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(tfrecord::crc32c(std::string(32, '\0')), 0x8A9136AAu);
  const uint32_t c = tfrecord::crc32c("abc");
  EXPECT_EQ(tfrecord::masked_crc32c("abc"), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TfRecord, FramesAndUnframes) {
  const std::string a = tfrecord::frame("hello"), b = tfrecord::frame(""), c = tfrecord::frame(std::string(300, 'x'));
  EXPECT_EQ(a.size(), 5u + 16u);
  EXPECT_EQ(a.substr(0, 8), std::string("\x05\0\0\0\0\0\0\0", 8));  // little-endian length
  const auto r = tfrecord::unframe(a + b + c);
  EXPECT_EQ(r.damage, "");
  EXPECT_EQ(r.data, (std::vector<std::string>{"hello", "", std::string(300, 'x')}));
}

TEST(TfRecord, StopsAtATornOrCorruptRecord) {
  const std::string good = tfrecord::frame("one") + tfrecord::frame("two");
  const std::string third = tfrecord::frame("three");
  auto torn = tfrecord::unframe(good + third.substr(0, third.size() - 2));
  EXPECT_EQ(torn.data, (std::vector<std::string>{"one", "two"}));
  EXPECT_NE(torn.damage.find("record 2 at byte 38: cut short"), std::string::npos) << torn.damage;
  std::string flipped = good + third;
  flipped[good.size() + 13] ^= 1;  // a data byte of the third record
  auto bad = tfrecord::unframe(flipped);
  EXPECT_EQ(bad.data.size(), 2u);
  EXPECT_NE(bad.damage.find("the data's CRC does not match"), std::string::npos) << bad.damage;
  std::string bad_len = good;
  bad_len[0] ^= 1;
  EXPECT_NE(tfrecord::unframe(bad_len).damage.find("record 0 at byte 0: the length's CRC"), std::string::npos);
}

TEST(TensorBoardWriter, WritesOneEventPerRecordWithItsNumbers) {
  TempDir d;
  const std::string dir = d / "tb";
  {
    TensorBoardWriter w(dir, -1);
    w.write({{"step", 0}, {"event", "start"}, {"params", 123}});  // no scalar of tensorboard_tags(): no event
    w.write(train_record(1));
    w.write({{"step", 1}, {"event", "eval"}, {"val_loss", 2.5}, {"val_ppl", std::exp(2.5)}, {"val_bpb", nullptr}});
    // Flushed at each write: the file is complete before the writer closes.
    const Scalars s = scalars_of(w.path());
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s.at(1), (std::map<std::string, float>{{"train/loss", 10.0f},
                                                      {"train/lr", 1e-3f},
                                                      {"train/grad_norm", 1.5f},
                                                      {"train/tokens_per_s", 1234.5f},
                                                      {"val/loss", 2.5f},
                                                      {"val/perplexity", static_cast<float>(std::exp(2.5))}}));
    EXPECT_NE(fs::path(w.path()).filename().string().find("events.out.tfevents."), std::string::npos);
  }
  // A fresh run replaces the directory's events.
  TensorBoardWriter again(dir, -1);
  again.write(train_record(1));
  EXPECT_EQ(scalars_of(only_event_file(dir)).size(), 1u);
}

TEST(TensorBoardWriter, ResumeKeepsTheEventsUpToTheCheckpointInOneFile) {
  TempDir d;
  const std::string dir = d / "tb";
  {
    TensorBoardWriter w(dir, -1);
    for (int64_t s = 1; s <= 10; ++s) w.write(train_record(s));
  }
  // The run crashed while writing step 11's event: its torn record is dropped too.
  const std::string first = only_event_file(dir);
  const std::string torn = tfrecord::frame("step 11");
  std::ofstream(first, std::ios::binary | std::ios::app) << torn.substr(0, torn.size() - 3);
  {
    TensorBoardWriter w(dir, 6);  // resumed from the step-6 checkpoint
    for (int64_t s = 7; s <= 12; ++s) w.write(train_record(s));
  }
  const Scalars s = scalars_of(only_event_file(dir));
  ASSERT_EQ(s.size(), 12u);
  for (int64_t step = 1; step <= 12; ++step) EXPECT_EQ(s.at(step).at("train/loss"), static_cast<float>(10.0 / step));
}

TEST(TensorBoardWriter, ALaterFileThatRestartsReplacesTheEarlierSteps) {
  // Two files, as a crash between writing a resumed run's file and removing the old one leaves:
  // the later file restarts at step 1 and wins, the way TensorBoard reads a restart.
  TempDir d;
  std::string older, newer;
  {
    TensorBoardWriter a(d / "a", -1), b(d / "b", -1);
    for (int64_t s = 1; s <= 5; ++s) a.write(train_record(s));
    for (int64_t s = 1; s <= 3; ++s) b.write(train_record(s));
    b.write({{"step", 4}, {"loss", 99.0}});
    older = a.path(), newer = b.path();
  }
  const std::string dir = d / "tb";
  fs::create_directories(dir);
  fs::copy_file(older, dir + "/events.out.tfevents.0.older");
  fs::copy_file(newer, dir + "/events.out.tfevents.1.newer");
  TensorBoardWriter w(dir, 100);
  const Scalars s = scalars_of(only_event_file(dir));
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s.at(3).at("train/loss"), static_cast<float>(10.0 / 3));
  EXPECT_EQ(s.at(4), (std::map<std::string, float>{{"train/loss", 99.0f}}));
}

TEST(TensorBoardWriter, NamesAFileThatIsNotAnEventFile) {
  TempDir d;
  d.write("tb/events.out.tfevents.1.x", tfrecord::frame("not an Event \xff\xff"));
  EXPECT_ERROR_HAS(TensorBoardWriter(d / "tb", 5), "tb/events.out.tfevents.1.x", "is not a TensorBoard Event");
}

// ---- a training run -------------------------------------------------------------------------------

class TensorBoardRun : public ::testing::Test {
 protected:
  void SetUp() override {
    gta::data::PrepareOptions p;
    p.inputs = {std::string(GTA_SOURCE_DIR) + "/tests/data/tiny.txt"};
    p.out_dir = dir_ / "data";
    p.vocab_size = 384;
    p.progress = false;
    gta::data::prepare(p);
  }

  // Trains `steps` of a 10-step schedule into OUT (tiny GQA model; a train record every step, an
  // eval every 4 steps, a checkpoint every 4 steps and at the end).
  void train(const std::string& out, int64_t steps, bool resume, std::vector<std::string> overrides = {}) {
    const std::string yaml = fmt::format(R"(model: {{vocab_size: 0, d_model: 32, n_layers: 1, d_ff: 64, n_heads: 4,
  attention: {{type: gqa, n_kv_heads: 2}}}}
data: {{train: {0}/train_000000.h5, val: {0}/val_000000.h5, tokenizer: {0}/tokenizer.model}}
train: {{device: cpu, steps: {1}, batch_size: 2, seq_len: 32, out_dir: {2}, log_every: 1, seed: 3}}
optim: {{lr: 3.0e-3, warmup_steps: 2, decay_steps: 10}}
checkpoint: {{every: 4, keep: 0}}
eval: {{every: 4, batches: 2}}
)",
                                         dir_ / "data", steps, dir_ / out);
    gta::train::TrainOptions o;
    o.config = gta::config::parse_run_config(yaml, "tensorboard_run.yaml", overrides);
    o.resume = resume;
    o.config_source = "tensorboard_run.yaml";
    gta::train::run_training(o);
  }
  std::string tb(const std::string& out) { return dir_ / (out + "/tb"); }
  std::string metrics(const std::string& out) { return dir_ / (out + "/metrics.jsonl"); }

  TempDir dir_;
};

TEST_F(TensorBoardRun, EventsEqualMetricsAlsoAcrossAResume) {
  train("full", 10, false);
  const Scalars full = scalars_of(only_event_file(tb("full")));
  EXPECT_EQ(full, scalars_of_metrics(metrics("full")));
  ASSERT_EQ(full.size(), 10u);
  for (int64_t step = 1; step <= 10; ++step) EXPECT_EQ(full.at(step).count("train/loss"), 1u) << step;
  for (int64_t step : {4, 8, 10}) EXPECT_EQ(full.at(step).count("val/bits_per_byte"), 1u) << step;

  // A run that got to step 6 and crashed after its step-4 checkpoint (step 6's, written at its
  // end, is removed), then --resume to 10: steps 5 and 6 are logged once, from the second run.
  train("split", 6, false);
  fs::remove_all(dir_ / "split/checkpoints/step_000006");
  train("split", 10, true);
  const Scalars split = scalars_of(only_event_file(tb("split")));
  EXPECT_EQ(split, scalars_of_metrics(metrics("split")));
  ASSERT_EQ(split.size(), 10u);
  // Resuming continues bit for bit: the same losses and validation results as the whole run.
  for (int64_t step = 1; step <= 10; ++step) {
    EXPECT_EQ(split.at(step).at("train/loss"), full.at(step).at("train/loss")) << step;
    if (full.at(step).count("val/loss")) {
      EXPECT_EQ(split.at(step).at("val/loss"), full.at(step).at("val/loss")) << step;
    }
  }
}

TEST_F(TensorBoardRun, MfuWhenThePeakIsKnownAndNoEventsWhenTurnedOff) {
  train("mfu", 2, false, {"logging.peak_tflops=0.001"});
  const Scalars s = scalars_of(only_event_file(tb("mfu")));
  EXPECT_EQ(s, scalars_of_metrics(metrics("mfu")));
  EXPECT_GT(s.at(2).at("train/mfu"), 0.0f);
  train("off", 2, false, {"logging.tensorboard=false"});
  EXPECT_TRUE(fs::exists(metrics("off")));
  EXPECT_FALSE(fs::exists(tb("off")));
}

}  // namespace
