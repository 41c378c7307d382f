#include "data/bin_shard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace gta::data {
namespace {

// pread until `n` bytes are read; false on EOF or error.
bool pread_full(int fd, void* buf, size_t n, uint64_t off) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, off_t(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r; n -= size_t(r); off += uint64_t(r);
  }
  return true;
}

}  // namespace

BinShard::BinShard(const std::string& path) : path_(path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail("shard {} does not exist", path);
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail("cannot open shard {}: {}", path, std::strerror(errno));
  try {
    struct stat st;
    if (::fstat(fd_, &st) != 0) fail("cannot stat shard {}: {}", path, std::strerror(errno));
    uint64_t size = uint64_t(st.st_size);
    int32_t header[kHeaderInts];
    if (size < sizeof(header) || !pread_full(fd_, header, sizeof(header), 0))
      fail("shard {} is too short ({} bytes) for the 1024-byte .bin header", path, size);
    if (header[0] != kMagic)
      fail("shard {}: bad magic number {} in the .bin header (expected {}; raw headerless "
           ".bin files are not supported)", path, header[0], kMagic);
    version_ = header[1];
    if (version_ != 1 && version_ != 2)
      fail("shard {}: unsupported .bin version {} (expected 1 for uint16 or 2 for uint32 tokens)",
           path, version_);
    token_bytes_ = version_ == 1 ? 2 : 4;
    if (header[2] < 0) fail("shard {}: negative token count {} in the header", path, header[2]);
    n_tokens_ = uint64_t(uint32_t(header[2]));
    uint64_t expect = sizeof(header) + n_tokens_ * uint64_t(token_bytes_);
    if (size != expect)
      fail("shard {}: file is {} bytes but the header promises {} tokens ({} bytes); the file is "
           "truncated or corrupt", path, size, n_tokens_, expect);
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

BinShard::~BinShard() {
  if (fd_ >= 0) ::close(fd_);
}

std::string BinShard::describe_position(uint64_t pos) const {
  return fmt::format(" (byte offset {})", uint64_t(kHeaderInts) * 4 + pos * uint64_t(token_bytes_));
}

void BinShard::read(uint64_t start, uint64_t count, int32_t* out) {
  if (start > n_tokens_ || count > n_tokens_ - start)
    fail("shard {}: read of tokens [{}, {}) is out of range (shard has {} tokens)", path_, start,
         start + count, n_tokens_);
  if (count == 0) return;
  uint64_t off = uint64_t(kHeaderInts) * 4 + start * uint64_t(token_bytes_);
  if (token_bytes_ == 4) {
    if (!pread_full(fd_, out, count * 4, off))
      fail("shard {}: read of tokens [{}, {}) failed: {}", path_, start, start + count,
           std::strerror(errno));
    return;
  }
  scratch_.resize(count * 2);
  if (!pread_full(fd_, scratch_.data(), count * 2, off))
    fail("shard {}: read of tokens [{}, {}) failed: {}", path_, start, start + count,
         std::strerror(errno));
  const uint8_t* p = scratch_.data();
  for (uint64_t i = 0; i < count; ++i) out[i] = int32_t(uint32_t(p[2 * i]) | (uint32_t(p[2 * i + 1]) << 8));
}

void write_bin_shard(const std::string& path, const std::vector<int32_t>& tokens, int version) {
  GTA_CHECK(version == 1 || version == 2, ".bin version must be 1 or 2, got {}", version);
  GTA_CHECK(tokens.size() <= uint64_t(INT32_MAX), ".bin shard {}: too many tokens", path);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail("cannot create {}", path);
  int32_t header[BinShard::kHeaderInts] = {};
  header[0] = BinShard::kMagic;
  header[1] = version;
  header[2] = int32_t(tokens.size());
  f.write(reinterpret_cast<const char*>(header), sizeof(header));
  if (version == 1) {
    std::vector<uint16_t> v(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      GTA_CHECK(tokens[i] >= 0 && tokens[i] < 65536, ".bin shard {}: token {} does not fit uint16",
                path, tokens[i]);
      v[i] = uint16_t(tokens[i]);
    }
    f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 2));
  } else {
    f.write(reinterpret_cast<const char*>(tokens.data()), std::streamsize(tokens.size() * 4));
  }
  if (!f) fail("write error on {}", path);
}

}  // namespace gta::data
