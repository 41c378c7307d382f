// Safetensors reader/writer: round trips of every dtype, rejection of each kind of corrupt file
// (the error must name the file, the tensor and what was expected), atomic writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using gta::DType;
using gta::Tensor;
using gta::io::load_safetensors;
using gta::io::save_safetensors;
using namespace gta_test;

namespace {

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A file from a header (JSON text) and a data buffer.
std::string make_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

// Expects load_safetensors(path) to throw a gta::Error containing every one of `parts`.
void expect_load_error(const std::string& path, const std::vector<std::string>& parts) {
  expect_error([&] { load_safetensors(path); }, parts);
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir dir;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-3, 3);
  std::map<std::string, Tensor> ts;
  {
    std::vector<float> v(24);
    for (auto& x : v) x = static_cast<float>(u(rng));
    ts["f32"] = Tensor::from_vector(v, {2, 3, 4});
  }
  {
    std::vector<double> v(7);
    for (auto& x : v) x = u(rng);
    ts["f64"] = Tensor::from_vector(v, {7});
  }
  {
    std::vector<gta::bf16> v(6);
    for (auto& x : v) x = gta::bf16(static_cast<float>(u(rng)));
    ts["bf16"] = Tensor::from_vector(v, {3, 2});
  }
  ts["i32"] = Tensor::from_vector(std::vector<int32_t>{-5, 0, 7, INT32_MAX, INT32_MIN}, {5});
  ts["i64"] = Tensor::from_vector(std::vector<int64_t>{INT64_MIN, -1, 0, 1, INT64_MAX, 42}, {2, 3});
  ts["u16"] = Tensor::from_vector(std::vector<uint16_t>{0, 1, 65535, 300}, {4, 1});
  ts["scalar"] = Tensor::from_vector(std::vector<float>{3.5f}, {});
  ts["empty"] = Tensor::empty({0, 3}, DType::f32);
  std::map<std::string, std::string> meta = {{"config", R"({"a": 1})"}, {"step", "12"}, {"note", "ü ✓"}};

  const std::string path = dir / "x.safetensors";
  save_safetensors(path, ts, meta);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto f = load_safetensors(path);
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), ts.size());
  for (const auto& [name, t] : ts) {
    ASSERT_TRUE(f.tensors.count(name)) << name;
    const Tensor& g = f.tensors.at(name);
    EXPECT_TRUE(g.device().is_cpu());
    EXPECT_TRUE(bits_equal(t, g)) << name << ": " << t.str() << " vs " << g.str();
  }
}

TEST(Safetensors, NonContiguousTensorsAreSavedInLogicalOrder) {
  TempDir dir;
  Tensor a = Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor at = a.transpose(0, 1);  // [3, 2], not contiguous
  ASSERT_FALSE(at.is_contiguous());
  const std::string path = dir / "t.safetensors";
  save_safetensors(path, {{"t", at}, {"s", a.slice(1, 1, 3)}});
  auto f = load_safetensors(path);
  EXPECT_EQ(f.tensors.at("t").shape(), (gta::Shape{3, 2}));
  EXPECT_EQ(f.tensors.at("t").to_doubles(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(f.tensors.at("s").to_doubles(), (std::vector<double>{1, 2, 4, 5}));
}

TEST(Safetensors, HeaderIsPaddedSortedAndDescribesData) {
  TempDir dir;
  const std::string path = dir / "h.safetensors";
  save_safetensors(path,
                   {{"zeta", Tensor::from_vector(std::vector<float>{1, 2, 3}, {3})},
                    {"alpha", Tensor::from_vector(std::vector<int64_t>{9}, {1})},
                    {"mid", Tensor::from_vector(std::vector<uint16_t>{1, 2, 3}, {3})}},
                   {{"k", "v"}});
  const std::string bytes = read_file(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  auto h = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(h["__metadata__"]["k"], "v");
  // Data follows sorted-name order: alpha, mid, zeta.
  EXPECT_EQ(h["alpha"]["data_offsets"], nlohmann::json::array({0, 8}));
  EXPECT_EQ(h["mid"]["data_offsets"], nlohmann::json::array({8, 14}));
  EXPECT_EQ(h["zeta"]["data_offsets"], nlohmann::json::array({14, 26}));
  EXPECT_EQ(h["zeta"]["dtype"], "F32");
  EXPECT_EQ(h["mid"]["dtype"], "U16");
  EXPECT_EQ(bytes.size(), 8 + n + 26);

  auto hdr = gta::io::read_safetensors_header(path);
  EXPECT_EQ(hdr.entries.size(), 3u);
  EXPECT_EQ(hdr.entries.at("zeta").shape, (gta::Shape{3}));
  EXPECT_EQ(hdr.data_bytes, 26u);
}

TEST(Safetensors, ReadsFilesOfOtherWriters) {
  // Unpadded header, metadata absent, data in non-name order, a zero-size tensor.
  TempDir dir;
  const std::string path = dir / "o.safetensors";
  float a[2] = {1.5f, -2.f};
  int32_t b[1] = {77};
  std::string data(reinterpret_cast<const char*>(b), 4);
  data += std::string(reinterpret_cast<const char*>(a), 8);
  write_file(path, make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
                              R"("b":{"dtype":"I32","shape":[1,1],"data_offsets":[0,4]},)"
                              R"("z":{"dtype":"F64","shape":[0],"data_offsets":[12,12]}})",
                              data));
  auto f = load_safetensors(path);
  EXPECT_EQ(f.tensors.at("a").to_doubles(), (std::vector<double>{1.5, -2}));
  EXPECT_EQ(f.tensors.at("b").to_doubles(), (std::vector<double>{77}));
  EXPECT_EQ(f.tensors.at("b").shape(), (gta::Shape{1, 1}));
  EXPECT_EQ(f.tensors.at("z").numel(), 0);
  EXPECT_TRUE(f.metadata.empty());
}

TEST(Safetensors, RejectsMissingFile) {
  TempDir dir;
  expect_load_error(dir / "nope.safetensors", {"nope.safetensors", "cannot open"});
}

TEST(Safetensors, RejectsTooShortFile) {
  TempDir dir;
  const std::string path = dir / "short.safetensors";
  write_file(path, "abc");
  expect_load_error(path, {path, "too short"});
}

TEST(Safetensors, RejectsHeaderLengthBeyondFile) {
  TempDir dir;
  const std::string path = dir / "len.safetensors";
  write_file(path, le64(1000) + "{}");
  expect_load_error(path, {path, "header length 1000", "past the end"});
}

TEST(Safetensors, RejectsBadJson) {
  TempDir dir;
  const std::string path = dir / "json.safetensors";
  write_file(path, make_file(R"({"a": {"dtype": "F32", )", ""));
  expect_load_error(path, {path, "not valid JSON"});
  write_file(path, make_file(R"([1, 2, 3])", ""));
  expect_load_error(path, {path, "must be a JSON object"});
}

TEST(Safetensors, RejectsOffsetsOutOfRange) {
  TempDir dir;
  const std::string path = dir / "range.safetensors";
  write_file(path, make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0')));
  expect_load_error(path, {path, "tensor 'w'", "[0, 16]", "past the data buffer (8 bytes)"});
}

TEST(Safetensors, RejectsOverlappingTensors) {
  TempDir dir;
  const std::string path = dir / "overlap.safetensors";
  write_file(path, make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              std::string(12, '\0')));
  expect_load_error(path, {path, "'a'", "'b'", "overlap"});
}

TEST(Safetensors, RejectsSizeNotMatchingShape) {
  TempDir dir;
  const std::string path = dir / "size.safetensors";
  write_file(path, make_file(R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}})", std::string(8, '\0')));
  expect_load_error(path, {path, "tensor 'w'", "span 8 bytes", "[2, 3]", "BF16", "needs 12 bytes"});
}

TEST(Safetensors, RejectsNegativeShape) {
  TempDir dir;
  const std::string path = dir / "neg.safetensors";
  write_file(path, make_file(R"({"w":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,0]}})", ""));
  expect_load_error(path, {path, "tensor 'w'", "negative"});
}

TEST(Safetensors, RejectsUnsupportedDtypeNamingTensorAndDtype) {
  TempDir dir;
  const std::string path = dir / "f16.safetensors";
  write_file(path, make_file(R"({"half":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", std::string(4, '\0')));
  expect_load_error(path, {path, "tensor 'half'", "F16", "not support"});
  write_file(path, make_file(R"({"odd":{"dtype":"Q4","shape":[2],"data_offsets":[0,4]}})", std::string(4, '\0')));
  expect_load_error(path, {path, "tensor 'odd'", "unknown dtype 'Q4'"});
}

TEST(Safetensors, RejectsMalformedEntries) {
  TempDir dir;
  const std::string path = dir / "entry.safetensors";
  write_file(path, make_file(R"({"w":{"dtype":"F32","shape":[1]}})", std::string(4, '\0')));
  expect_load_error(path, {path, "tensor 'w'", "data_offsets"});
  write_file(path, make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", std::string(4, '\0')));
  expect_load_error(path, {path, "tensor 'w'", "end before begin"});
  write_file(path, make_file(R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", std::string(4, '\0')));
  expect_load_error(path, {path, "tensor 'w'", "shape"});
  write_file(path, make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", std::string(4, '\0')));
  expect_load_error(path, {path, "tensor 'w'", "'x'"});
  write_file(path, make_file(R"({"__metadata__":{"step":3}})", ""));
  expect_load_error(path, {path, "__metadata__", "step", "string"});
}

TEST(Safetensors, RejectsReservedOrEmptyNamesOnSave) {
  TempDir dir;
  const std::string path = dir / "r.safetensors";
  Tensor t = Tensor::zeros({1});
  EXPECT_THROW(save_safetensors(path, {{"__metadata__", t}}), gta::Error);
  EXPECT_THROW(save_safetensors(path, {{"", t}}), gta::Error);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Safetensors, AtomicWriteReplacesAndNeverLosesTheOldFile) {
  TempDir dir;
  const std::string path = dir / "ckpt.safetensors";
  save_safetensors(path, {{"w", Tensor::from_vector(std::vector<float>{1, 2}, {2})}});
  const std::string old_bytes = read_file(path);

  // Overwriting succeeds and leaves no temporary behind.
  save_safetensors(path, {{"w", Tensor::from_vector(std::vector<float>{3, 4, 5}, {3})}});
  EXPECT_EQ(load_safetensors(path).tensors.at("w").to_doubles(), (std::vector<double>{3, 4, 5}));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const std::string new_bytes = read_file(path);

  // The temporary cannot be created (a directory sits there): error, old file intact.
  fs::create_directories(path + ".tmp");
  try {
    save_safetensors(path, {{"w", Tensor::zeros({100})}});
    ADD_FAILURE() << "expected an error";
  } catch (const gta::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ".tmp"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(path), new_bytes);
  fs::remove_all(path + ".tmp");

  // The disk fills up while writing (the temporary is a link to /dev/full): error, old file intact.
  if (fs::exists("/dev/full")) {
    fs::create_symlink("/dev/full", path + ".tmp");
    try {
      save_safetensors(path, {{"w", Tensor::zeros({1000})}});
      ADD_FAILURE() << "expected an error";
    } catch (const gta::Error& e) {
      EXPECT_NE(std::string(e.what()).find("write failed"), std::string::npos) << e.what();
    }
    EXPECT_EQ(read_file(path), new_bytes);
    EXPECT_FALSE(fs::exists(fs::symlink_status(path + ".tmp"))) << "the failed temporary is removed";
  }

  // A missing directory is an error naming the path.
  EXPECT_THROW(save_safetensors(dir / "no/such/dir/x.safetensors", {{"w", Tensor::zeros({1})}}), gta::Error);
  (void)old_bytes;
}

TEST(Safetensors, LoadsGoldenFiles) {
  const std::string dir = GTA_SOURCE_DIR "/tests/golden";
  if (!fs::exists(dir + "/gta.safetensors")) GTEST_SKIP() << "no golden files in " << dir;
  for (const char* type : {"mha", "gqa", "mla", "gta", "gva", "gha"}) {
    SCOPED_TRACE(type);
    auto f = load_safetensors(dir + "/" + type + ".safetensors");
    ASSERT_TRUE(f.metadata.count("config"));
    ASSERT_TRUE(f.tensors.count("tokens"));
    const int64_t batch = std::stoll(f.metadata.at("batch"));
    const int64_t seq = std::stoll(f.metadata.at("seq_len"));
    EXPECT_EQ(f.tensors.at("tokens").dtype(), DType::i32);
    EXPECT_EQ(f.tensors.at("tokens").shape(), (gta::Shape{batch, seq + 1}));
    EXPECT_EQ(f.tensors.at("expected.loss").dtype(), DType::f64);
    EXPECT_EQ(f.tensors.at("model.embed_tokens.weight").dtype(), DType::f32);
    EXPECT_EQ(f.tensors.at("grad.model.embed_tokens.weight").dtype(), DType::f64);
    const double loss = f.tensors.at("expected.loss").item();
    EXPECT_GT(loss, 0.0);
    EXPECT_LT(loss, 20.0);
  }
}
