// Helpers shared by the unit tests (random tensors and gradcheck live in tests/gradcheck.h):
//   - TempDir: a fresh directory per test, removed afterwards;
//   - read_file / write_file: whole files as bytes;
//   - error_of / expect_error / EXPECT_ERROR_HAS: the gta::Error a call throws and its message;
//   - bits_equal: same shape, dtype and bytes;
//   - model_config / tiny_gqa_config: small model configs;
//   - random_ids / random_tokens: token ids from a seeded gta::Rng.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace gta_test {

// ---- files ------------------------------------------------------------------------------------

// A fresh, empty directory per test, gta_<suite>_<test>_<pid> under the system temp directory,
// removed with everything in it when the object goes out of scope. Construct it inside a test
// (or a fixture): the name comes from the running test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "gta_" + std::string(info ? info->test_suite_name() : "test") + "_" +
                       std::string(info ? info->name() : "none") + "_" + std::to_string(::getpid());
    std::replace(name.begin(), name.end(), '/', '_');  // parameterised tests: Suite/Test.Case/0
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` inside the directory, as a string.
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // Writes `text` to `name` (directories created) and returns the path.
  std::string write(const std::string& name, const std::string& text) const {
    const std::filesystem::path p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// ---- errors -----------------------------------------------------------------------------------

// Runs f and returns the gta::Error message (fails the test when nothing is thrown).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const gta::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a gta::Error";
  return {};
}

// Runs f, expects a gta::Error whose message contains every one of `parts`.
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  const std::string msg = error_of(f);
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
}

// EXPECT_ERROR_HAS(statement, "part", ...): the statement throws a gta::Error naming every part.
#define EXPECT_ERROR_HAS(stmt, ...)                                 \
  do {                                                              \
    SCOPED_TRACE(#stmt);                                            \
    ::gta_test::expect_error([&] { stmt; }, {__VA_ARGS__});         \
  } while (0)

// ---- tensors ----------------------------------------------------------------------------------

// Same shape, dtype and bytes.
inline bool bits_equal(const gta::Tensor& a, const gta::Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  gta::Tensor ca = a.detach().contiguous(), cb = b.detach().contiguous();
  return ca.nbytes() == 0 || std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

// ---- models -----------------------------------------------------------------------------------

// The sizes of a model config; the caller sets the attention keys of `type`.
inline gta::config::ModelConfig model_config(int64_t vocab_size, int d_model, int n_layers, int d_ff, int n_heads,
                                             const std::string& type) {
  gta::config::ModelConfig c;
  c.vocab_size = vocab_size;
  c.d_model = d_model;
  c.n_layers = n_layers;
  c.d_ff = d_ff;
  c.n_heads = n_heads;
  c.attention.type = type;
  return c;
}

// The checkpoint and optimizer tests' model: vocab 17, d 16, 2 layers, 4 heads over 2 kv heads.
inline gta::config::ModelConfig tiny_gqa_config(bool tied = true, bool qkv_bias = false) {
  gta::config::ModelConfig c = model_config(17, 16, 2, 24, 4, "gqa");
  c.tie_embeddings = tied;
  c.attention.n_kv_heads = 2;
  c.attention.qkv_bias = qkv_bias;
  return c;
}

// n ids uniform in [0, vocab) from gta::Rng(seed).
inline std::vector<int32_t> random_ids(size_t n, int64_t vocab, uint64_t seed) {
  gta::Rng rng(seed);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab)));
  return v;
}

// An i32 [B, T] tensor of random_ids.
inline gta::Tensor random_tokens(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  return gta::Tensor::from_vector(random_ids(static_cast<size_t>(B * T), vocab, seed), {B, T});
}

}  // namespace gta_test
