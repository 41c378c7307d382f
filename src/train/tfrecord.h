// TFRecord framing, the container of TensorBoard's event files. A file is a sequence of records,
//   uint64 length | uint32 masked_crc(length) | byte data[length] | uint32 masked_crc(data)
// integers little-endian, where masked_crc(x) = rotr(crc32c(x), 15) + 0xa282ead8: CRC-32C
// (Castagnoli) rotated and offset so that the CRC of bytes that themselves hold CRCs is not
// trivially related to them.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gta::train::tfrecord {

// CRC-32C (iSCSI, RFC 3720): polynomial 0x1EDC6F41, reflected, initial value and final xor all ones.
uint32_t crc32c(std::string_view bytes);
uint32_t masked_crc32c(std::string_view bytes);

// The framed bytes of one record holding `data`.
std::string frame(std::string_view data);

struct Records {
  std::vector<std::string> data;  // each record's payload, in file order
  // Why reading stopped before the end ("record 3 at byte 120: the data's CRC does not match");
  // empty when every byte belonged to a sound record.
  std::string damage;
};

// The records of `bytes`, up to the first one that is cut short or fails a CRC: the tail a crash
// tore while it was being written.
Records unframe(std::string_view bytes);

}  // namespace gta::train::tfrecord
