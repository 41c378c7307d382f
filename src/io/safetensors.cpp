#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/sha256.h"

namespace gta::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; gta reads it in place on little-endian hosts");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // same limit as the reference implementation

const char* kSupported = "F32, F64, BF16, I32, I64, U16";

// dtypes of the format that gta has no DType for: named in the error.
bool is_known_unsupported(const std::string& s) {
  static const char* names[] = {"F16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2",
                                "F4", "I8", "U8", "I16", "U32", "U64", "BOOL", "C64"};
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u16: return "U16";
  }
  fail("safetensors: unknown gta dtype {}", static_cast<int>(t));
}

DType dtype_from_safetensors_name(const std::string& s, const std::string& what) {
  if (s == "F32") return DType::f32;
  if (s == "F64") return DType::f64;
  if (s == "BF16") return DType::bf16;
  if (s == "I32") return DType::i32;
  if (s == "I64") return DType::i64;
  if (s == "U16") return DType::u16;
  if (is_known_unsupported(s))
    fail("{} has dtype {}, which gta does not support (supported: {})", what, s, kSupported);
  fail("{} has unknown dtype '{}' (expected one of {})", what, s, kSupported);
}

namespace {

uint64_t parse_offset(const nlohmann::json& v, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  fail("{}: data_offsets must hold two non-negative integers, got {}", what, v.dump());
}

SafetensorsEntry parse_entry(const std::string& file, const std::string& name, const nlohmann::json& e) {
  const std::string what = fmt::format("{}: tensor '{}'", file, name);
  if (!e.is_object()) fail("{}: header entry must be an object, got {}", what, e.type_name());
  for (auto it = e.begin(); it != e.end(); ++it) {
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
      fail("{}: unexpected header field '{}' (expected dtype, shape, data_offsets)", what, it.key());
  }
  SafetensorsEntry out;
  auto d = e.find("dtype");
  if (d == e.end() || !d->is_string()) fail("{}: missing string field 'dtype'", what);
  out.dtype = dtype_from_safetensors_name(d->get<std::string>(), what);

  auto s = e.find("shape");
  if (s == e.end() || !s->is_array()) fail("{}: missing array field 'shape'", what);
  for (const auto& dim : *s) {
    if (!dim.is_number_integer()) fail("{}: shape must hold integers, got {}", what, s->dump());
    if (dim.is_number_unsigned()) {
      uint64_t u = dim.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) fail("{}: shape dimension {} is too large", what, u);
      out.shape.push_back(static_cast<int64_t>(u));
    } else {
      int64_t v = dim.get<int64_t>();
      if (v < 0) fail("{}: shape {} has a negative dimension (expected sizes >= 0)", what, s->dump());
      out.shape.push_back(v);
    }
  }

  auto o = e.find("data_offsets");
  if (o == e.end() || !o->is_array() || o->size() != 2)
    fail("{}: missing field 'data_offsets' (expected [begin, end])", what);
  out.begin = parse_offset((*o)[0], what);
  out.end = parse_offset((*o)[1], what);
  if (out.end < out.begin)
    fail("{}: data_offsets [{}, {}] end before begin", what, out.begin, out.end);

  // Expected byte size, with overflow checks.
  uint64_t bytes = dtype_size(out.dtype);
  for (int64_t dim : out.shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes))
      fail("{}: shape {} is too large", what, s->dump());
  }
  if (out.end - out.begin != bytes)
    fail("{}: data_offsets [{}, {}] span {} bytes, but shape {} of {} needs {} bytes", what, out.begin,
         out.end, out.end - out.begin, shape_str(out.shape), safetensors_dtype_name(out.dtype), bytes);
  return out;
}

SafetensorsHeader read_header(std::ifstream& in, const std::string& path) {
  in.seekg(0, std::ios::end);
  const std::streamoff size_off = in.tellg();
  if (size_off < 0) fail("{}: cannot determine the file size", path);
  const uint64_t file_size = static_cast<uint64_t>(size_off);
  in.seekg(0, std::ios::beg);
  if (file_size < 8)
    fail("{}: file too short ({} bytes) for a safetensors file (expected an 8-byte header length)",
         path, file_size);
  unsigned char lenbuf[8];
  in.read(reinterpret_cast<char*>(lenbuf), 8);
  if (!in) fail("{}: cannot read the header length", path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | lenbuf[i];
  if (n > file_size - 8)
    fail("{}: header length {} runs past the end of the file ({} bytes after the length field); "
         "not a safetensors file or truncated",
         path, n, file_size - 8);
  if (n > kMaxHeaderBytes) fail("{}: header length {} exceeds the {} byte limit", path, n, kMaxHeaderBytes);
  if (n < 2) fail("{}: header length {} is too small for a JSON object", path, n);
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  if (!in) fail("{}: cannot read the {}-byte header", path, n);

  nlohmann::json h;
  try {
    h = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: header is not valid JSON ({})", path, e.what());
  }
  if (!h.is_object()) fail("{}: header must be a JSON object, got {}", path, h.type_name());

  SafetensorsHeader out;
  out.header_bytes = n;
  out.data_bytes = file_size - 8 - n;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail("{}: __metadata__ must be an object of strings, got {}", path, it->type_name());
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          fail("{}: __metadata__ value '{}' must be a string, got {}", path, m.key(), m->dump());
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    SafetensorsEntry e = parse_entry(path, it.key(), *it);
    if (e.end > out.data_bytes)
      fail("{}: tensor '{}' data_offsets [{}, {}] run past the data buffer ({} bytes)", path, it.key(),
           e.begin, e.end, out.data_bytes);
    out.entries.emplace(it.key(), std::move(e));
  }

  // No two tensors may share bytes.
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> order;
  for (const auto& [name, e] : out.entries)
    if (e.end > e.begin) order.emplace_back(&name, &e);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& [pn, pe] = order[i - 1];
    const auto& [cn, ce] = order[i];
    if (ce->begin < pe->end)
      fail("{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap (expected disjoint data_offsets)", path, *pn,
           pe->begin, pe->end, *cn, ce->begin, ce->end);
  }
  return out;
}

std::ifstream open_for_read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open for reading ({})", path, errno_str());
  return in;
}

}  // namespace

SafetensorsHeader read_safetensors_header(const std::string& path) {
  std::ifstream in = open_for_read(path);
  return read_header(in, path);
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream in = open_for_read(path);
  SafetensorsHeader h = read_header(in, path);
  const uint64_t data_start = 8 + h.header_bytes;
  SafetensorsFile out;
  out.metadata = std::move(h.metadata);
  for (const auto& [name, e] : h.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype, Device::cpu());
    const uint64_t n = e.end - e.begin;
    if (n > 0) {
      in.seekg(static_cast<std::streamoff>(data_start + e.begin), std::ios::beg);
      in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(n));
      if (!in) fail("{}: tensor '{}': cannot read {} bytes at offset {}", path, name, n, data_start + e.begin);
    }
    out.tensors.emplace(name, std::move(t));
  }
  return out;
}

std::string save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                             const std::map<std::string, std::string>& metadata) {
  // Host copies, in sorted-name order (std::map), and the header describing them.
  std::vector<Tensor> host;
  host.reserve(tensors.size());
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    GTA_CHECK(!name.empty(), "{}: cannot save a tensor with an empty name", path);
    GTA_CHECK(name != "__metadata__", "{}: '__metadata__' is reserved and cannot name a tensor", path);
    GTA_CHECK(t.defined(), "{}: tensor '{}' is undefined", path, name);
    Tensor h = t.detach().to(Device::cpu()).contiguous();
    const uint64_t n = h.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(h.dtype())},
                    {"shape", h.shape()},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
    host.push_back(std::move(h));
  }
  if (!metadata.empty()) {
    nlohmann::json m = nlohmann::json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char lenbuf[8];
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) lenbuf[i] = static_cast<unsigned char>(len >> (8 * i));

  DurableFile file(path);
  Sha256 digest;
  auto write = [&](const void* data, size_t n) {
    digest.update(data, n);
    file.write(data, n);
  };
  write(lenbuf, 8);
  write(text.data(), text.size());
  for (const Tensor& h : host)
    if (h.nbytes() > 0) write(h.raw_data(), h.nbytes());
  file.commit();
  return digest.hex_digest();
}

}  // namespace gta::io
