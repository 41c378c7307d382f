#include "data/shard.h"

#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <type_traits>

#include "core/error.h"
#include "data/bin_shard.h"

static_assert(std::is_same_v<hid_t, int64_t>, "hid_t is expected to be int64_t (HDF5 >= 1.10)");

namespace gta::data {
namespace {

// HDF5 prints its error stack to stderr by default; we turn failures into gta::Error instead.
// In thread-safe builds the setting is per thread, so every entry point calls this.
void h5_quiet() {
  thread_local bool done = false;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    done = true;
  }
}

// The innermost HDF5 error description on this thread's stack (then clears the stack).
std::string h5_detail() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD,
           [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
             auto* s = static_cast<std::string*>(data);
             if (n == 0 && e->desc) *s = e->desc;
             return 0;
           },
           &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg.empty() ? "unknown HDF5 error" : msg;
}

// RAII for HDF5 handles.
struct H5Handle {
  hid_t id = -1;
  herr_t (*closer)(hid_t) = nullptr;
  H5Handle() = default;
  H5Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), closer(c) {}
  ~H5Handle() { if (id >= 0 && closer) closer(id); }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  operator hid_t() const { return id; }
};

void write_attr_u64(hid_t obj, const char* name, uint64_t v) {
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle a(H5Acreate2(obj, name, H5T_STD_U64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (a.id < 0 || H5Awrite(a, H5T_NATIVE_UINT64, &v) < 0)
    fail("cannot write HDF5 attribute '{}': {}", name, h5_detail());
}

void write_attr_str(hid_t obj, const char* name, const std::string& v) {
  H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, v.size() + 1);
  H5Tset_strpad(type, H5T_STR_NULLTERM);
  H5Tset_cset(type, H5T_CSET_UTF8);
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle a(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (a.id < 0 || H5Awrite(a, type, v.c_str()) < 0)
    fail("cannot write HDF5 attribute '{}': {}", name, h5_detail());
}

void require_attr(hid_t obj, const std::string& path, const char* name, const char* expected) {
  htri_t e = H5Aexists(obj, name);
  if (e <= 0)
    fail("shard {} is missing attribute '{}' (expected {}; shards are written by `gta prepare`)",
         path, name, expected);
}

uint64_t read_attr_u64(hid_t obj, const std::string& path, const char* name) {
  require_attr(obj, path, name, "an integer");
  H5Handle a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  H5Handle t(H5Aget_type(a), H5Tclose);
  H5Handle s(H5Aget_space(a), H5Sclose);
  if (H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(s) != 1)
    fail("shard {}: attribute '{}' must be a scalar integer", path, name);
  uint64_t v = 0;
  if (H5Aread(a, H5T_NATIVE_UINT64, &v) < 0)
    fail("shard {}: cannot read attribute '{}': {}", path, name, h5_detail());
  return v;
}

std::string read_attr_str(hid_t obj, const std::string& path, const char* name) {
  require_attr(obj, path, name, "a string");
  H5Handle a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  H5Handle t(H5Aget_type(a), H5Tclose);
  if (H5Tget_class(t) != H5T_STRING) fail("shard {}: attribute '{}' must be a string", path, name);
  std::string out;
  if (H5Tis_variable_str(t) > 0) {
    H5Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));  // ASCII <-> UTF-8 has no conversion path in HDF5
    char* p = nullptr;
    if (H5Aread(a, mt, &p) < 0)
      fail("shard {}: cannot read attribute '{}': {}", path, name, h5_detail());
    if (p) { out = p; H5free_memory(p); }
  } else {
    // A fixed-length string is null-terminated (gta's writer) or null-padded (h5py's default):
    // read it null-padded into n bytes, so that all n characters arrive (a null-terminated memory
    // type of n bytes would give up the last one for the terminator), then cut at the first null.
    // Space-padded strings lose their trailing spaces.
    const size_t n = H5Tget_size(t);
    std::string buf(n, '\0');
    H5Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mt, n);
    H5Tset_strpad(mt, H5T_STR_NULLPAD);
    H5Tset_cset(mt, H5Tget_cset(t));  // ASCII <-> UTF-8 has no conversion path in HDF5
    if (H5Aread(a, mt, buf.data()) < 0)
      fail("shard {}: cannot read attribute '{}': {}", path, name, h5_detail());
    out = buf.substr(0, buf.find('\0'));
    if (H5Tget_strpad(t) == H5T_STR_SPACEPAD) out.erase(out.find_last_not_of(' ') + 1);
  }
  return out;
}

std::string type_name(hid_t t) {
  size_t size = H5Tget_size(t);
  switch (H5Tget_class(t)) {
    case H5T_INTEGER:
      return fmt::format("{}int{}", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", size * 8);
    case H5T_FLOAT: return fmt::format("float{}", size * 8);
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    default: return fmt::format("HDF5 class {}", int(H5Tget_class(t)));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------- writer

ShardWriter::ShardWriter(const std::string& path, uint64_t vocab_size,
                         const std::string& tokenizer_sha256, uint64_t chunk_tokens,
                         int deflate_level)
    : path_(path), chunk_tokens_(std::max<uint64_t>(1, chunk_tokens)) {
  h5_quiet();
  GTA_CHECK(vocab_size > 0 && vocab_size <= (uint64_t(1) << 32),
            "shard {}: vocab size {} out of range", path, vocab_size);
  GTA_CHECK(deflate_level >= 0 && deflate_level <= 9, "deflate level {} not in 0..9", deflate_level);
  meta_.vocab_size = vocab_size;
  meta_.tokenizer_sha256 = tokenizer_sha256;
  wide_ = vocab_size > 65536;
  file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file_ < 0) fail("cannot create shard {}: {}", path, h5_detail());
  hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED}, chunk[1] = {chunk_tokens_};
  H5Handle space(H5Screate_simple(1, dims, maxdims), H5Sclose);
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(dcpl, 1, chunk);
  H5Pset_obj_track_times(dcpl, false);  // byte-identical output for identical input
  if (deflate_level > 0) {
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, unsigned(deflate_level));
  }
  dset_ = H5Dcreate2(file_, "tokens", wide_ ? H5T_STD_U32LE : H5T_STD_U16LE, space, H5P_DEFAULT,
                     dcpl, H5P_DEFAULT);
  if (dset_ < 0) {
    std::string d = h5_detail();
    H5Fclose(file_);
    file_ = -1;
    fail("cannot create dataset 'tokens' in shard {}: {}", path, d);
  }
  buf_.reserve(chunk_tokens_ * 16);
}

ShardWriter::~ShardWriter() {
  try {
    close();
  } catch (...) {
  }
}

void ShardWriter::add_document(const int32_t* tokens, size_t n, uint64_t n_bytes) {
  GTA_CHECK(file_ >= 0, "shard {}: add_document after close", path_);
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || uint64_t(tokens[i]) >= meta_.vocab_size)
      fail("shard {}: token id {} is outside the vocabulary [0, {})", path_, tokens[i],
           meta_.vocab_size);
  }
  doc_offsets_.push_back(meta_.n_tokens);
  buf_.insert(buf_.end(), tokens, tokens + n);
  meta_.n_tokens += n;
  meta_.n_bytes += n_bytes;
  meta_.n_documents += 1;
  if (buf_.size() >= chunk_tokens_ * 16) flush();
}

void ShardWriter::flush() {
  h5_quiet();
  if (buf_.empty()) return;
  hsize_t newdims[1] = {written_ + buf_.size()};
  if (H5Dset_extent(dset_, newdims) < 0)
    fail("shard {}: cannot extend dataset 'tokens': {}", path_, h5_detail());
  H5Handle fspace(H5Dget_space(dset_), H5Sclose);
  hsize_t start[1] = {written_}, count[1] = {buf_.size()};
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
  H5Handle mspace(H5Screate_simple(1, count, nullptr), H5Sclose);
  herr_t st;
  if (wide_) {
    st = H5Dwrite(dset_, H5T_NATIVE_UINT32, mspace, fspace, H5P_DEFAULT, buf_.data());
  } else {
    std::vector<uint16_t> narrow(buf_.begin(), buf_.end());
    st = H5Dwrite(dset_, H5T_NATIVE_UINT16, mspace, fspace, H5P_DEFAULT, narrow.data());
  }
  if (st < 0) fail("shard {}: write failed: {}", path_, h5_detail());
  written_ += buf_.size();
  buf_.clear();
}

void ShardWriter::close() {
  if (file_ < 0) return;
  h5_quiet();
  struct Closer {
    ShardWriter* w;
    ~Closer() {
      if (w->dset_ >= 0) H5Dclose(w->dset_);
      if (w->file_ >= 0) H5Fclose(w->file_);
      w->dset_ = w->file_ = -1;
    }
  } closer{this};
  flush();
  if (!doc_offsets_.empty()) {
    hsize_t dims[1] = {doc_offsets_.size()};
    hsize_t chunk[1] = {std::min<hsize_t>(dims[0], 1 << 16)};
    H5Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose);
    H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(dcpl, 1, chunk);
    H5Pset_obj_track_times(dcpl, false);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 1);
    H5Handle d(H5Dcreate2(file_, "doc_offsets", H5T_STD_U64LE, space, H5P_DEFAULT, dcpl,
                          H5P_DEFAULT), H5Dclose);
    if (d.id < 0 || H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                             doc_offsets_.data()) < 0)
      fail("shard {}: cannot write dataset 'doc_offsets': {}", path_, h5_detail());
  }
  H5Handle root(H5Gopen2(file_, "/", H5P_DEFAULT), H5Gclose);
  write_attr_str(root, "format", "gta-tokens-1");
  write_attr_str(root, "tokenizer_sha256", meta_.tokenizer_sha256);
  write_attr_u64(root, "n_tokens", meta_.n_tokens);
  write_attr_u64(root, "n_bytes", meta_.n_bytes);
  write_attr_u64(root, "n_documents", meta_.n_documents);
  write_attr_u64(root, "vocab_size", meta_.vocab_size);
  doc_offsets_.clear();
  doc_offsets_.shrink_to_fit();
  H5Dclose(dset_);
  dset_ = -1;
  herr_t st = H5Fclose(file_);
  file_ = -1;
  if (st < 0) fail("shard {}: closing the file failed: {}", path_, h5_detail());
}

void write_shard(const std::string& path, const std::vector<int32_t>& tokens, uint64_t vocab_size,
                 const std::string& tokenizer_sha256, uint64_t n_bytes, uint64_t chunk_tokens) {
  ShardWriter w(path, vocab_size, tokenizer_sha256, chunk_tokens);
  w.add_document(tokens, n_bytes);
  w.close();
}

// ---------------------------------------------------------------------------------- reader

H5Shard::H5Shard(const std::string& path) : path_(path) {
  h5_quiet();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail("shard {} does not exist", path);
  if (std::filesystem::is_directory(path, ec)) fail("shard {} is a directory, expected a file", path);
  htri_t is = H5Fis_hdf5(path.c_str());
  if (is <= 0) {
    H5Eclear2(H5E_DEFAULT);
    fail("shard {} is not an HDF5 file (corrupt, truncated or another format)", path);
  }
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) fail("cannot open shard {}: {}", path, h5_detail());
  try {
    if (H5Lexists(file_, "tokens", H5P_DEFAULT) <= 0)
      fail("shard {} has no dataset 'tokens' (expected a 1-D uint16/uint32 dataset as written "
           "by `gta prepare`)", path);
    H5Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
    // A few chunks of cache: sequential reads hit it, random windows cost one chunk each.
    H5Pset_chunk_cache(dapl, 521, 4 << 20, 1.0);
    dset_ = H5Dopen2(file_, "tokens", dapl);
    if (dset_ < 0) fail("shard {}: cannot open dataset 'tokens': {}", path, h5_detail());
    H5Handle type(H5Dget_type(dset_), H5Tclose);
    if (type.id < 0) fail("shard {}: cannot read the type of 'tokens': {}", path, h5_detail());
    size_t size = H5Tget_size(type);
    if (H5Tget_class(type) != H5T_INTEGER || (size != 2 && size != 4))
      fail("shard {}: dataset 'tokens' has type {}, expected uint16 or uint32", path,
           type_name(type));
    token_bytes_ = int(size);
    H5Handle space(H5Dget_space(dset_), H5Sclose);
    if (H5Sget_simple_extent_ndims(space) != 1)
      fail("shard {}: dataset 'tokens' has {} dimensions, expected 1", path,
           H5Sget_simple_extent_ndims(space));
    hsize_t dims[1];
    H5Sget_simple_extent_dims(space, dims, nullptr);
    meta_.tokenizer_sha256 = read_attr_str(file_, path, "tokenizer_sha256");
    meta_.n_tokens = read_attr_u64(file_, path, "n_tokens");
    meta_.n_bytes = read_attr_u64(file_, path, "n_bytes");
    meta_.n_documents = read_attr_u64(file_, path, "n_documents");
    meta_.vocab_size = read_attr_u64(file_, path, "vocab_size");
    if (meta_.n_tokens != dims[0])
      fail("shard {}: attribute n_tokens = {} but dataset 'tokens' holds {} tokens (truncated or "
           "corrupt shard)", path, meta_.n_tokens, uint64_t(dims[0]));
    if (meta_.vocab_size == 0)
      fail("shard {}: attribute vocab_size must be positive", path);
  } catch (...) {
    if (dset_ >= 0) H5Dclose(dset_);
    H5Fclose(file_);
    dset_ = file_ = -1;
    throw;
  }
}

H5Shard::~H5Shard() {
  h5_quiet();
  if (dset_ >= 0) H5Dclose(dset_);
  if (file_ >= 0) H5Fclose(file_);
}

void H5Shard::read(uint64_t start, uint64_t count, int32_t* out) {
  h5_quiet();
  if (start > meta_.n_tokens || count > meta_.n_tokens - start)
    fail("shard {}: read of tokens [{}, {}) is out of range (shard has {} tokens)", path_, start,
         start + count, meta_.n_tokens);
  if (count == 0) return;
  H5Handle fspace(H5Dget_space(dset_), H5Sclose);
  hsize_t s[1] = {start}, c[1] = {count};
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, s, nullptr, c, nullptr);
  H5Handle mspace(H5Screate_simple(1, c, nullptr), H5Sclose);
  herr_t st;
  if (token_bytes_ == 4) {
    st = H5Dread(dset_, H5T_NATIVE_UINT32, mspace, fspace, H5P_DEFAULT, out);
  } else {
    scratch_.resize((count + 1) / 2);
    auto* tmp = reinterpret_cast<uint16_t*>(scratch_.data());
    st = H5Dread(dset_, H5T_NATIVE_UINT16, mspace, fspace, H5P_DEFAULT, tmp);
    if (st >= 0)
      for (uint64_t i = 0; i < count; ++i) out[i] = int32_t(tmp[i]);
  }
  if (st < 0)
    fail("shard {}: reading tokens [{}, {}) failed (corrupt shard?): {}", path_, start,
         start + count, h5_detail());
  for (uint64_t i = 0; i < count; ++i) {
    if (uint64_t(uint32_t(out[i])) >= meta_.vocab_size)
      fail("shard {}: token {} at position {} is outside the vocabulary [0, {}) (corrupt shard?)",
           path_, uint32_t(out[i]), start + i, meta_.vocab_size);
  }
}

std::vector<uint64_t> H5Shard::doc_offsets() {
  h5_quiet();
  std::vector<uint64_t> out;
  if (H5Lexists(file_, "doc_offsets", H5P_DEFAULT) <= 0) return out;
  H5Handle d(H5Dopen2(file_, "doc_offsets", H5P_DEFAULT), H5Dclose);
  if (d.id < 0) fail("shard {}: cannot open dataset 'doc_offsets': {}", path_, h5_detail());
  H5Handle space(H5Dget_space(d), H5Sclose);
  hssize_t n = H5Sget_simple_extent_npoints(space);
  out.resize(size_t(std::max<hssize_t>(0, n)));
  if (n > 0 && H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    fail("shard {}: reading 'doc_offsets' failed: {}", path_, h5_detail());
  return out;
}

// ------------------------------------------------------------------------------ dispatch

namespace {
std::string lower_ext(const std::string& path) {
  std::string e = std::filesystem::path(path).extension().string();
  for (auto& ch : e) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return e;
}
}  // namespace

bool is_token_file(const std::string& path) {
  auto e = lower_ext(path);
  return e == ".h5" || e == ".hdf5" || e == ".bin";
}

std::unique_ptr<TokenSource> open_token_source(const std::string& path) {
  auto e = lower_ext(path);
  if (e == ".h5" || e == ".hdf5") return std::make_unique<H5Shard>(path);
  if (e == ".bin") return std::make_unique<BinShard>(path);
  fail("shard {}: unknown extension '{}' (expected .h5, .hdf5 or .bin)", path, e);
}

}  // namespace gta::data
