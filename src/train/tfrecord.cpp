#include "train/tfrecord.h"

#include <boost/crc.hpp>
#include <fmt/format.h>

namespace gta::train::tfrecord {

namespace {

using Crc32c = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  Crc32c crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t c = crc32c(bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string frame(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out), 4);
  out.append(data);
  put_le(out, masked_crc32c(data), 4);
  return out;
}

Records unframe(std::string_view bytes) {
  Records r;
  size_t at = 0;
  while (at < bytes.size()) {
    const auto stop = [&](std::string_view why) {
      r.damage = fmt::format("record {} at byte {}: {}", r.data.size(), at, why);
    };
    if (bytes.size() - at < 12) {
      stop("cut short in its length header");
      break;
    }
    const uint64_t n = get_le(bytes, at, 8);
    if (get_le(bytes, at + 8, 4) != masked_crc32c(bytes.substr(at, 8))) {
      stop("the length's CRC does not match");
      break;
    }
    if (bytes.size() - at - 12 < n || bytes.size() - at - 12 - n < 4) {
      stop(fmt::format("cut short ({} data bytes announced)", n));
      break;
    }
    const std::string_view data = bytes.substr(at + 12, n);
    if (get_le(bytes, at + 12 + n, 4) != masked_crc32c(data)) {
      stop("the data's CRC does not match");
      break;
    }
    r.data.emplace_back(data);
    at += 12 + n + 4;
  }
  return r;
}

}  // namespace gta::train::tfrecord
