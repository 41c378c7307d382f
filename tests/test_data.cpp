// Tests of the data pipeline: SHA-256, tokenizer, HDF5 and .bin shards, loader, prepare.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/sha256.h"
#include "data/bin_shard.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace gta;
using namespace gta::data;
using gta_test::read_file;
using gta_test::TempDir;
using gta_test::write_file;

namespace {

std::string source_dir() { return GTA_SOURCE_DIR; }

// Every document DocumentReader yields from `files`, reading `chunk_bytes` at a time.
std::vector<std::string> read_documents(const std::vector<std::string>& files, size_t chunk_bytes = 1 << 20,
                                        const std::string& doc_split = "blank-lines") {
  DocumentReader r(files, "text", doc_split, chunk_bytes);
  std::vector<std::string> docs;
  for (std::string d; r.next(d);) docs.push_back(d);
  return docs;
}

// The documents of a whole plain text in memory (blank-line separated, a trailing '\r' of the
// last line dropped): the definition DocumentReader streams, written out independently.
std::vector<std::string> blank_line_documents(const std::string& text) {
  std::vector<std::string> docs, lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  lines.emplace_back();  // closes the last document
  std::string doc;
  for (const auto& l : lines) {
    if (l.find_first_not_of(" \t\r\f\v") != std::string::npos) {
      doc += (doc.empty() ? "" : "\n") + l;
    } else if (!doc.empty()) {
      if (doc.back() == '\r') doc.pop_back();
      docs.push_back(doc);
      doc.clear();
    }
  }
  return docs;
}

std::vector<int32_t> iota_tokens(size_t n, int32_t base, int32_t mod) {
  std::vector<int32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = int32_t((uint64_t(base) + i) % uint64_t(mod));
  return v;
}

}  // namespace

// ------------------------------------------------------------------------------ SHA-256

TEST(Data, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Incremental updates of odd sizes give the same digest.
  Sha256 h;
  for (size_t pos = 0, step = 1; pos < million.size(); pos += step, step = step * 7 % 1000 + 1)
    h.update(million.data() + pos, std::min(step, million.size() - pos));
  EXPECT_EQ(h.hex_digest(), sha256_hex(million));
}

TEST(Data, Sha256File) {
  TempDir d;
  write_file(d / "f", "abc");
  EXPECT_EQ(sha256_file(d / "f"), sha256_hex("abc"));
  EXPECT_ERROR_HAS(sha256_file(d / "missing"), "missing");
}

// ------------------------------------------------------------------------------ HDF5 shards

TEST(Data, ShardRoundTrip) {
  TempDir d;
  std::vector<int32_t> doc1 = iota_tokens(70000, 5, 50000), doc2 = {1, 2, 3, 2};
  {
    ShardWriter w(d / "s.h5", 50000, "abc123", /*chunk_tokens=*/4096);
    w.add_document(doc1, 1000);
    w.add_document(doc2, 7);
    w.close();
    EXPECT_EQ(w.meta().n_tokens, 70004u);
  }
  H5Shard s(d / "s.h5");
  EXPECT_EQ(s.n_tokens(), 70004u);
  EXPECT_EQ(s.n_bytes(), 1007u);
  EXPECT_EQ(s.n_documents(), 2u);
  EXPECT_EQ(s.vocab_size(), 50000u);
  EXPECT_EQ(s.tokenizer_sha256(), "abc123");
  EXPECT_EQ(s.token_bytes(), 2);
  EXPECT_EQ(s.doc_offsets(), (std::vector<uint64_t>{0, 70000}));
  std::vector<int32_t> all(70004);
  s.read(0, all.size(), all.data());
  EXPECT_TRUE(std::equal(doc1.begin(), doc1.end(), all.begin()));
  EXPECT_EQ(std::vector<int32_t>(all.end() - 4, all.end()), doc2);
  std::vector<int32_t> part(10);
  s.read(4090, 10, part.data());  // across a chunk boundary
  EXPECT_EQ(part, std::vector<int32_t>(doc1.begin() + 4090, doc1.begin() + 4100));
  EXPECT_ERROR_HAS(s.read(70000, 5, part.data()), "s.h5", "out of range");
}

TEST(Data, ShardRoundTripUint32) {
  TempDir d;
  std::vector<int32_t> toks = {0, 65535, 65536, 99999, 123456, 7};
  write_shard(d / "w.h5", toks, 200000, "sha", 42);
  auto src = open_token_source(d / "w.h5");
  auto* h = dynamic_cast<H5Shard*>(src.get());
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->token_bytes(), 4);
  std::vector<int32_t> back(toks.size());
  src->read(0, toks.size(), back.data());
  EXPECT_EQ(back, toks);
  EXPECT_EQ(src->n_bytes(), 42u);
}

TEST(Data, ShardWriterRejectsOutOfVocab) {
  TempDir d;
  ShardWriter w(d / "x.h5", 100, "");
  EXPECT_ERROR_HAS(w.add_document(std::vector<int32_t>{1, 100}, 2), "x.h5", "100");
}

TEST(Data, ShardIdenticalBytesForIdenticalInput) {
  TempDir d;
  auto toks = iota_tokens(10000, 0, 300);
  write_shard(d / "a.h5", toks, 300, "x", 1);
  write_shard(d / "b.h5", toks, 300, "x", 1);
  EXPECT_EQ(sha256_file(d / "a.h5"), sha256_file(d / "b.h5"));
}

TEST(Data, ShardBadFiles) {
  TempDir d;
  EXPECT_ERROR_HAS(H5Shard(d / "nope.h5"), "nope.h5", "does not exist");
  write_file(d / "garbage.h5", std::string(5000, 'x'));
  EXPECT_ERROR_HAS(H5Shard(d / "garbage.h5"), "garbage.h5", "not an HDF5 file");

  // Wrong dtype: float tokens. Missing dataset. Missing attributes.
  {
    hid_t f = H5Fcreate((d / "float.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {16};
    hid_t sp = H5Screate_simple(1, dims, nullptr);
    hid_t ds = H5Dcreate2(f, "tokens", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<float> v(16, 1.f);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Dclose(ds);
    hid_t ds2 = H5Dcreate2(f, "other", H5T_STD_U16LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds2);
    H5Sclose(sp);
    H5Fclose(f);
  }
  EXPECT_ERROR_HAS(H5Shard(d / "float.h5"), "float.h5", "float32", "uint16 or uint32");
  {
    hid_t f = H5Fcreate((d / "nodata.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    f = H5Fcreate((d / "noattr.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {16};
    hid_t sp = H5Screate_simple(1, dims, nullptr);
    hid_t ds = H5Dcreate2(f, "tokens", H5T_STD_U16LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
  }
  EXPECT_ERROR_HAS(H5Shard(d / "nodata.h5"), "nodata.h5", "no dataset 'tokens'");
  EXPECT_ERROR_HAS(H5Shard(d / "noattr.h5"), "noattr.h5", "missing attribute 'tokenizer_sha256'");
}

TEST(Data, ShardCorruptBytes) {
  TempDir d;
  auto toks = iota_tokens(200000, 3, 60000);
  write_shard(d / "good.h5", toks, 60000, "sha", 1, /*chunk_tokens=*/8192);
  std::string bytes = read_file(d / "good.h5");
  // Truncated: the tail (and with it chunks and metadata) is gone.
  write_file(d / "trunc.h5", bytes.substr(0, bytes.size() / 2));
  EXPECT_ERROR_HAS(
      {
        H5Shard s(d / "trunc.h5");
        std::vector<int32_t> out(toks.size());
        s.read(0, toks.size(), out.data());
      },
      "trunc.h5");
  // Scrambled compressed chunk data in the middle of the file.
  std::string scrambled = bytes;
  for (size_t i = bytes.size() / 4; i < bytes.size() / 4 + 20000 && i < bytes.size(); ++i)
    scrambled[i] = char(scrambled[i] ^ 0x5a);
  write_file(d / "scrambled.h5", scrambled);
  EXPECT_ERROR_HAS(
      {
        H5Shard s(d / "scrambled.h5");
        std::vector<int32_t> out(toks.size());
        s.read(0, toks.size(), out.data());
      },
      "scrambled.h5");
}

// ------------------------------------------------------------------------------ .bin shards

TEST(Data, BinShardRoundTrip) {
  TempDir d;
  auto toks = iota_tokens(5000, 11, 50257);
  write_bin_shard(d / "a.bin", toks, 1);
  auto src = open_token_source(d / "a.bin");
  EXPECT_EQ(src->n_tokens(), 5000u);
  EXPECT_EQ(src->n_bytes(), 0u);
  std::vector<int32_t> out(100);
  src->read(4900, 100, out.data());
  EXPECT_EQ(out, std::vector<int32_t>(toks.begin() + 4900, toks.end()));
  EXPECT_ERROR_HAS(src->read(4950, 100, out.data()), "a.bin", "out of range");

  std::vector<int32_t> wide = {0, 70000, 128255, 5};
  write_bin_shard(d / "b.bin", wide, 2);
  BinShard b(d / "b.bin");
  EXPECT_EQ(b.version(), 2);
  std::vector<int32_t> back(4);
  b.read(0, 4, back.data());
  EXPECT_EQ(back, wide);
}

TEST(Data, BinShardBadFiles) {
  TempDir d;
  EXPECT_ERROR_HAS(BinShard(d / "missing.bin"), "missing.bin", "does not exist");
  auto toks = iota_tokens(100, 0, 1000);
  write_bin_shard(d / "good.bin", toks, 1);
  std::string bytes = read_file(d / "good.bin");
  std::string bad = bytes;
  bad[0] = 1;
  write_file(d / "magic.bin", bad);
  EXPECT_ERROR_HAS(BinShard(d / "magic.bin"), "magic.bin", "magic", "20240520");
  write_file(d / "trunc.bin", bytes.substr(0, bytes.size() - 2));
  EXPECT_ERROR_HAS(BinShard(d / "trunc.bin"), "trunc.bin", "truncated");
  write_file(d / "short.bin", bytes.substr(0, 100));
  EXPECT_ERROR_HAS(BinShard(d / "short.bin"), "short.bin", "header");
  bad = bytes;
  bad[4] = 7;
  write_file(d / "ver.bin", bad);
  EXPECT_ERROR_HAS(BinShard(d / "ver.bin"), "ver.bin", "version 7");
  write_file(d / "x.txt", "hello");
  EXPECT_ERROR_HAS(open_token_source(d / "x.txt"), "x.txt", "extension");
}

// ------------------------------------------------------------------------------ loader

namespace {

// Three shards whose token values identify (shard, position): value = 10000*s + position.
std::vector<std::string> make_loader_shards(const TempDir& d, std::vector<size_t> sizes = {1000, 517, 2050}) {
  std::vector<std::string> paths;
  for (size_t s = 0; s < sizes.size(); ++s) {
    std::string p = d / fmt::format("train_{:06d}.h5", s);
    write_shard(p, iota_tokens(sizes[s], int32_t(10000 * s), 65536), 65536, "tok", sizes[s] * 4);
    paths.push_back(p);
  }
  return paths;
}

LoaderOptions opts(int64_t T, int64_t B, uint64_t seed = 1, int rank = 0, int world = 1,
                   SampleMode mode = SampleMode::Random) {
  LoaderOptions o;
  o.seq_len = T;
  o.batch_size = B;
  o.seed = seed;
  o.rank = rank;
  o.world_size = world;
  o.mode = mode;
  return o;
}

std::vector<int32_t> take(DataLoader& l, int steps) {
  std::vector<int32_t> all;
  for (int i = 0; i < steps; ++i) {
    Batch b = l.next_batch();
    all.insert(all.end(), b.tokens.begin(), b.tokens.end());
  }
  return all;
}

}  // namespace

TEST(Data, LoaderWindowsInsideShards) {
  TempDir d;
  auto paths = make_loader_shards(d);
  DataLoader l(paths, opts(64, 4));
  // floor((n-1)/T) windows per shard: 15 + 8 + 32.
  EXPECT_EQ(l.n_windows(), 15u + 8u + 32u);
  EXPECT_EQ(l.total_tokens(), 1000u + 517u + 2050u);
  EXPECT_EQ(l.total_bytes(), 4u * (1000u + 517u + 2050u));
  EXPECT_DOUBLE_EQ(l.bytes_per_token(), 4.0);
  EXPECT_EQ(l.tokenizer_sha256(), "tok");
  for (int step = 0; step < 40; ++step) {
    Batch b = l.next_batch();
    ASSERT_EQ(b.B, 4);
    ASSERT_EQ(b.T, 64);
    ASSERT_EQ(b.tokens.size(), 4u * 65u);
    for (int r = 0; r < b.B; ++r) {
      const int32_t* row = b.row(r);
      int32_t shard = row[0] / 10000, pos = row[0] % 10000;
      EXPECT_EQ(pos % 64, 0) << "window must start at a multiple of T";
      for (int t = 0; t < 65; ++t) EXPECT_EQ(row[t], shard * 10000 + pos + t) << "crossed a shard";
    }
  }
}

TEST(Data, LoaderDeterministicFromSeed) {
  TempDir d;
  auto paths = make_loader_shards(d);
  DataLoader a(paths, opts(32, 3, 7)), b(paths, opts(32, 3, 7)), c(paths, opts(32, 3, 8));
  auto ta = take(a, 50), tb = take(b, 50), tc = take(c, 50);
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
}

TEST(Data, LoaderRandomEpochIsPermutation) {
  TempDir d;
  auto paths = make_loader_shards(d);
  DataLoader l(paths, opts(64, 1, 3));
  std::set<uint64_t> e0, e1;
  std::vector<uint64_t> o0, o1;
  for (uint64_t k = 0; k < l.n_windows(); ++k) {
    o0.push_back(l.window_of_sample(k));
    o1.push_back(l.window_of_sample(k + l.n_windows()));
  }
  e0.insert(o0.begin(), o0.end());
  e1.insert(o1.begin(), o1.end());
  EXPECT_EQ(e0.size(), l.n_windows());
  EXPECT_EQ(e1.size(), l.n_windows());
  EXPECT_NE(o0, o1) << "each epoch should have its own order";
}

TEST(Data, LoaderRanksPartitionTheGlobalBatch) {
  TempDir d;
  auto paths = make_loader_shards(d);
  for (auto mode : {SampleMode::Random, SampleMode::Sequential}) {
    DataLoader one(paths, opts(50, 6, 5, 0, 1, mode));
    DataLoader r0(paths, opts(50, 3, 5, 0, 2, mode)), r1(paths, opts(50, 3, 5, 1, 2, mode));
    for (int step = 0; step < 30; ++step) {  // several epochs (70 windows, 6 per step)
      Batch g = one.next_batch(), a = r0.next_batch(), b = r1.next_batch();
      std::vector<int32_t> joined = a.tokens;
      joined.insert(joined.end(), b.tokens.begin(), b.tokens.end());
      ASSERT_EQ(joined, g.tokens) << "step " << step;
    }
    EXPECT_EQ(one.cursor(), r0.cursor());
  }
}

TEST(Data, LoaderResumeFromState) {
  TempDir d;
  auto paths = make_loader_shards(d);
  DataLoader full(paths, opts(40, 4, 9));
  auto expected = take(full, 60);

  DataLoader first(paths, opts(40, 4, 9));
  auto got = take(first, 25);
  nlohmann::json st = nlohmann::json::parse(first.state().dump());  // through text, as a checkpoint
  // Resume with a different world size: 2 ranks with B=2 continue the same global stream.
  LoaderOptions o0 = opts(40, 2, 9, 0, 2), o1 = opts(40, 2, 9, 1, 2);
  DataLoader r0(paths, o0), r1(paths, o1);
  r0.load_state(st);
  r1.load_state(st);
  for (int i = 0; i < 35; ++i) {
    Batch a = r0.next_batch(), b = r1.next_batch();
    got.insert(got.end(), a.tokens.begin(), a.tokens.end());
    got.insert(got.end(), b.tokens.begin(), b.tokens.end());
  }
  EXPECT_EQ(got, expected);
  // The cursor indexes one seed's and one mode's order: another seed or mode is refused, not
  // silently replaced by the saved one.
  DataLoader other_seed(paths, opts(40, 4, 10));
  EXPECT_ERROR_HAS(other_seed.load_state(st), "seed 9", "seed 10");
  DataLoader other_mode(paths, opts(40, 4, 9, 0, 1, SampleMode::Sequential));
  EXPECT_ERROR_HAS(other_mode.load_state(st), "mode random", "mode sequential");
}

TEST(Data, LoaderRefusesOtherDataOnResume) {
  TempDir d;
  auto paths = make_loader_shards(d);
  DataLoader a(paths, opts(40, 4));
  a.next_batch();
  auto st = a.state();
  DataLoader fewer(std::vector<std::string>{paths[0], paths[1]}, opts(40, 4));
  EXPECT_ERROR_HAS(fewer.load_state(st), "different data");
  DataLoader other_t(paths, opts(41, 4));
  EXPECT_ERROR_HAS(other_t.load_state(st), "seq_len 40", "seq_len 41");
  DataLoader same(paths, opts(40, 4));
  auto st2 = st;
  st2["seq_len"] = 41;
  EXPECT_ERROR_HAS(same.load_state(st2), "seq_len 41");
  auto st3 = st;
  st3.erase("cursor");
  EXPECT_ERROR_HAS(same.load_state(st3), "cursor");
}

TEST(Data, LoaderSequentialCoversAllWindowsOnce) {
  TempDir d;
  auto paths = make_loader_shards(d);
  DataLoader l(paths, opts(64, 5, 0, 0, 1, SampleMode::Sequential));
  std::set<int32_t> starts;
  uint64_t valid = 0;
  uint64_t steps = (l.n_windows() + 4) / 5;
  int32_t prev = -1;
  for (uint64_t s = 0; s < steps; ++s) {
    Batch b = l.next_batch();
    for (int r = 0; r < b.B; ++r) {
      if (b.samples[size_t(r)] >= l.n_windows()) continue;  // wrapped into the next epoch
      ++valid;
      int32_t v = b.row(r)[0];
      EXPECT_GT(v, prev) << "sequential order";
      prev = v;
      starts.insert(v);
    }
  }
  EXPECT_EQ(valid, l.n_windows());
  EXPECT_EQ(starts.size(), l.n_windows());
}

TEST(Data, LoaderPrefetchMatchesSynchronous) {
  TempDir d;
  auto paths = make_loader_shards(d);
  auto o = opts(32, 4, 2);
  o.prefetch = false;
  DataLoader a(paths, o);
  o.prefetch = true;
  DataLoader b(paths, o);
  EXPECT_EQ(take(a, 20), take(b, 20));
  auto st = a.state();
  b.set_cursor(0);
  b.load_state(st);
  EXPECT_EQ(take(a, 5), take(b, 5));
}

TEST(Data, LoaderErrors) {
  TempDir d;
  auto paths = make_loader_shards(d, {1000, 30});
  EXPECT_ERROR_HAS(DataLoader(paths, opts(64, 2)), "train_000001.h5", "30 tokens", "65");
  EXPECT_ERROR_HAS(DataLoader({d / "nothing_*.h5"}, opts(8, 2)), "matches no files");
  EXPECT_ERROR_HAS(DataLoader({d / "absent.h5"}, opts(8, 2)), "absent.h5", "does not exist");
  EXPECT_ERROR_HAS(DataLoader(paths, opts(8, 2, 0, 2, 2)), "rank 2");
  write_shard(d / "z_other.h5", iota_tokens(100, 0, 100), 100, "different-tokenizer", 1);
  EXPECT_ERROR_HAS(DataLoader({paths[0], d / "z_other.h5"}, opts(8, 2)), "z_other.h5", "tokenizer");
}

TEST(Data, LoaderExpandsDirectoriesAndGlobs) {
  TempDir d;
  auto paths = make_loader_shards(d);
  write_bin_shard(d / "zz.bin", iota_tokens(300, 0, 100), 1);
  write_file(d / "notes.txt", "ignored");
  auto dir = expand_shard_paths({d.path().string()});
  ASSERT_EQ(dir.size(), 4u);
  EXPECT_EQ(dir[0], paths[0]);
  EXPECT_EQ(dir[3], d / "zz.bin");
  auto g = expand_shard_paths({d / "train_*.h5"});
  EXPECT_EQ(g, paths);
  // A mix of .h5 and .bin: byte counts are unknown, tokens still add up.
  DataLoader l({d.path().string()}, opts(16, 2));
  EXPECT_EQ(l.total_bytes(), 0u);
  EXPECT_EQ(l.total_tokens(), 1000u + 517u + 2050u + 300u);
}

// ------------------------------------------------------------------------------ tokenizer

TEST(Data, TokenizerTrainEncodeDecode) {
  TempDir d;
  std::string text = read_file(source_dir() + "/tests/data/tiny.txt");
  ASSERT_GT(text.size(), 10000u);
  auto docs = blank_line_documents(text);
  TokenizerTrainOptions to;
  to.seed = 3;
  Tokenizer::train(docs, 512, d / "a", to);
  Tokenizer t = Tokenizer::load(d / "a.model");
  EXPECT_EQ(t.vocab_size(), 512);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.checksum(), sha256_file(d / "a.model"));
  for (std::string s : {std::string("First Citizen:\nBefore we proceed any further, hear me speak."),
                        std::string("  two  spaces,\ttabs\n\nand blank lines  \n"),
                        std::string("unicode: h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87"),
                        std::string("x = [1, 2, 3]  # code {braces}")}) {
    auto ids = t.encode(s);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t.vocab_size());
    EXPECT_EQ(t.decode(ids), s);
  }
  EXPECT_LE(t.encode("First Citizen").size(), 6u) << "common words should be few tokens";
  // Same seed, same model bytes.
  Tokenizer::train(docs, 512, d / "b", to);
  EXPECT_EQ(sha256_file(d / "b.model"), t.checksum());
  // Documents streamed through a visitor train the same model.
  Tokenizer::train([&](const Tokenizer::DocumentVisitor& visit) { for (const auto& doc : docs) visit(doc); }, 512,
                   d / "c", to);
  EXPECT_EQ(sha256_file(d / "c.model"), t.checksum());
}

TEST(Data, TokenizerLoadErrors) {
  TempDir d;
  EXPECT_ERROR_HAS(Tokenizer::load(d / "none.model"), "none.model", "does not exist");
  write_file(d / "bad.model", "this is not a protobuf \x01\x02\x03");
  EXPECT_ERROR_HAS(Tokenizer::load(d / "bad.model"), "bad.model", "not a valid SentencePiece");
  EXPECT_ERROR_HAS(Tokenizer::train(std::vector<std::string>{"abc"}, 10, d / "x"), "vocab size 10");
}

// ------------------------------------------------------------------------------ prepare

TEST(Data, DocumentReaderBlankLinesAnyChunkSize) {
  TempDir d;
  const std::string a = d.write("a.txt", "\n\nA:\nhello\n\n  \n\nB:\r\nbye\r\n\n\nC\n");
  const std::string b = d.write("b.txt", "no newline at the end\r");
  const std::string blank = d.write("blank.txt", "\n \n");
  const std::vector<std::string> want = {"A:\nhello", "B:\r\nbye", "C", "no newline at the end"};
  // Chunks that end inside lines, on '\n' and across files.
  for (size_t chunk : {1, 2, 3, 7, 1 << 20}) {
    EXPECT_EQ(read_documents({a, blank, b}, chunk), want) << "chunk " << chunk;
    EXPECT_EQ(read_documents({a, b}, chunk, "file"),
              (std::vector<std::string>{read_file(a), "no newline at the end\r"}))
        << "chunk " << chunk;
  }
  const std::string tiny = read_file(source_dir() + "/tests/data/tiny.txt");
  const auto docs = blank_line_documents(tiny);
  ASSERT_GT(docs.size(), 50u);
  for (size_t chunk : {5, 4099, 1 << 20}) {
    EXPECT_EQ(read_documents({source_dir() + "/tests/data/tiny.txt"}, chunk), docs) << "chunk " << chunk;
  }
}

TEST(Data, ChooseValidation) {
  auto v = choose_validation(100, 0.1, 1);
  EXPECT_EQ(std::count(v.begin(), v.end(), true), 10);
  EXPECT_EQ(v, choose_validation(100, 0.1, 1));
  EXPECT_NE(v, choose_validation(100, 0.1, 2));
  auto one = choose_validation(5, 0.0, 1);
  EXPECT_EQ(std::count(one.begin(), one.end(), true), 1) << "at least one validation document";
  EXPECT_ERROR_HAS(choose_validation(1, 0.1, 1), "at least 2 documents");
  EXPECT_ERROR_HAS(choose_validation(10, 1.5, 1), "val-fraction");
}

TEST(Data, DocumentReaderJsonlAndErrors) {
  TempDir d;
  write_file(d / "a.jsonl", "{\"text\": \"first doc\", \"id\": 1}\n\n{\"text\": \"second\\ndoc\"}\n");
  write_file(d / "b.txt", "para one\nline two\n\n\npara two\n");
  write_file(d / "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": oops}\n");
  write_file(d / "nofield.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"x\"}\n");
  write_file(d / "notstr.jsonl", "{\"text\": 5}\n");
  write_file(d / "empty.jsonl", "{\"text\": \"one\"}\n{\"text\": \"  \"}\n{\"text\": \"\"}\n");
  for (size_t chunk : {1, 6, 1 << 20}) {
    EXPECT_EQ(read_documents({d / "a.jsonl", d / "b.txt"}, chunk),
              (std::vector<std::string>{"first doc", "second\ndoc", "para one\nline two", "para two"}))
        << "chunk " << chunk;
    EXPECT_ERROR_HAS(read_documents({d / "bad.jsonl"}, chunk), "bad.jsonl:2", "invalid JSON");
    EXPECT_ERROR_HAS(read_documents({d / "nofield.jsonl"}, chunk), "nofield.jsonl:2", "no field 'text'");
    EXPECT_ERROR_HAS(read_documents({d / "notstr.jsonl"}, chunk), "notstr.jsonl:1", "expected a string");
  }
  DocumentReader r({d / "empty.jsonl"}, "text", "blank-lines");
  std::string doc;
  ASSERT_TRUE(r.next(doc));
  EXPECT_EQ(doc, "one");
  EXPECT_FALSE(r.next(doc));
  EXPECT_EQ(r.n_skipped_empty(), 2u);
  EXPECT_ERROR_HAS(read_documents({d / "missing.txt"}), "missing.txt");
  EXPECT_ERROR_HAS(DocumentReader({}, "text", "paragraphs"), "unknown document split 'paragraphs'");
  // Directories are searched recursively, sorted, hidden entries skipped.
  fs::create_directories(d.path() / "sub" / ".git");
  write_file(d / "sub/z.md", "zz");
  write_file(d / "sub/.git/config", "no");
  write_file(d / "sub/.git/x.txt", "no");
  write_file(d / "sub/image.png", "no");
  auto files = collect_input_files({(d.path() / "sub").string()});
  EXPECT_EQ(files, std::vector<std::string>{(d.path() / "sub" / "z.md").string()});
  EXPECT_ERROR_HAS(collect_input_files({d / "missing.txt"}), "missing.txt", "does not exist");
  // Invalid UTF-8 is replaced, not fatal.
  write_file(d / "latin1.txt", "caf\xE9\n");
  DocumentReader latin({d / "latin1.txt"}, "text", "blank-lines");
  ASSERT_TRUE(latin.next(doc));
  EXPECT_EQ(doc, "caf\xEF\xBF\xBD");
  EXPECT_EQ(latin.n_fixed_utf8(), 1u);
}

TEST(Data, PrepareEndToEnd) {
  TempDir d;
  PrepareOptions o;
  o.inputs = {source_dir() + "/tests/data/tiny.txt"};
  o.out_dir = d / "out";
  o.vocab_size = 384;
  o.shard_tokens = 8000;
  o.progress = false;
  o.command_line = "gta prepare (test)";
  auto r = prepare(o);
  EXPECT_TRUE(fs::exists(d / "out/tokenizer.model"));
  EXPECT_TRUE(fs::exists(d / "out/prepare.json"));
  EXPECT_GT(r.train.shards.size(), 1u);
  EXPECT_EQ(r.val.shards.size(), 1u);
  auto manifest = nlohmann::json::parse(read_file(d / "out/prepare.json"));
  EXPECT_EQ(manifest["tokenizer"]["sha256"], r.tokenizer_sha256);
  EXPECT_EQ(manifest["command"], "gta prepare (test)");
  // Nothing left behind but the output directory.
  int entries = 0;
  for (auto& e : fs::directory_iterator(d.path())) { (void)e; ++entries; }
  EXPECT_EQ(entries, 1);

  // Decoding the shards gives back the documents (EOS-separated), train then val.
  Tokenizer tok = Tokenizer::load(d / "out/tokenizer.model");
  EXPECT_EQ(tok.checksum(), r.tokenizer_sha256);
  std::string text = read_file(source_dir() + "/tests/data/tiny.txt");
  auto docs = blank_line_documents(text);
  auto is_val = choose_validation(docs.size(), o.val_fraction, o.seed);
  std::vector<std::string> train_docs;
  for (size_t i = 0; i < docs.size(); ++i) if (!is_val[i]) train_docs.emplace_back(docs[i]);
  std::vector<std::string> decoded;
  uint64_t bytes = 0;
  for (const auto& name : r.train.shards) {
    H5Shard s(d / ("out/" + name));
    EXPECT_EQ(s.tokenizer_sha256(), r.tokenizer_sha256);
    bytes += s.n_bytes();
    std::vector<int32_t> toks(s.n_tokens());
    s.read(0, toks.size(), toks.data());
    std::vector<int32_t> cur;
    for (int32_t t : toks) {
      if (t == tok.eos_id()) { decoded.push_back(tok.decode(cur)); cur.clear(); }
      else cur.push_back(t);
    }
    EXPECT_TRUE(cur.empty()) << "a shard ends at a document boundary";
  }
  EXPECT_EQ(decoded, train_docs);
  EXPECT_EQ(bytes, r.train.n_bytes);

  // A loader over the result works and resuming into a fresh output is refused.
  DataLoader l({d / "out/train_*.h5"}, opts(64, 4));
  EXPECT_EQ(l.tokenizer_sha256(), r.tokenizer_sha256);
  EXPECT_GT(l.bytes_per_token(), 1.0);
  EXPECT_ERROR_HAS(prepare(o), "not empty", "--force");
  o.force = true;
  o.tokenizer = d / "out/tokenizer.model";  // reuse the model: identical output
  auto r2 = prepare(o);
  EXPECT_EQ(r2.tokenizer_sha256, r.tokenizer_sha256);
  EXPECT_EQ(r2.train.n_tokens, r.train.n_tokens);
}

// The corpus is streamed through a bounded buffer: shards, tokenizer and manifest are the same
// bytes whether every document is in memory at once (a buffer larger than the corpus) or the
// buffer holds one document at a time, read in odd chunk sizes, with any number of threads.
TEST(Data, PrepareStreamedEqualsInMemory) {
  TempDir d;
  std::string jsonl;
  for (int i = 0; i < 40; ++i)
    jsonl += nlohmann::json{{"text", fmt::format("record {}\nwith two lines \u00e9 {}", i, i * i)}}.dump() + "\n";
  const std::string records = d.write("records.jsonl", jsonl);
  auto run = [&](const std::string& name, uint64_t buffer_bytes, int threads) {
    PrepareOptions o;
    o.inputs = {source_dir() + "/tests/data/tiny.txt", records};
    o.out_dir = d / name;
    o.vocab_size = 384;
    o.shard_tokens = 3000;
    o.threads = threads;
    o.buffer_bytes = buffer_bytes;
    o.progress = false;
    o.command_line = "gta prepare (test)";
    return prepare(o);
  };
  const PrepareResult whole = run("whole", uint64_t(1) << 30, 2);
  ASSERT_GT(whole.train.shards.size(), 3u);
  std::vector<std::string> files = {"tokenizer.model", "prepare.json"};
  for (const auto& s : whole.train.shards) files.push_back(s);
  for (const auto& s : whole.val.shards) files.push_back(s);
  for (auto [buffer, threads] : std::vector<std::pair<uint64_t, int>>{{1, 1}, {7, 3}, {4099, 2}}) {
    const std::string name = fmt::format("buffer_{}", buffer);
    const PrepareResult r = run(name, buffer, threads);
    EXPECT_EQ(r.manifest, whole.manifest) << name;
    for (const auto& f : files)
      EXPECT_TRUE(read_file(d / (name + "/" + f)) == read_file(d / ("whole/" + f))) << name << ": " << f << " differs";
  }
}
