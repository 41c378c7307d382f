// gta prepare: turn text / JSONL into a tokenizer and HDF5 train/val shards (src/data/prepare.h).
#include <memory>

#include "cli/commands.h"
#include "cli/validators.h"
#include "data/prepare.h"

namespace gta::cli {

void register_prepare(CLI::App& app) {
  struct State {
    data::PrepareOptions opts;
    bool quiet = false;
    uint64_t buffer_mb = data::PrepareOptions{}.buffer_bytes >> 20;
  };
  auto st = std::make_shared<State>();
  data::PrepareOptions* opts = &st->opts;
  auto* cmd = app.add_subcommand(
      "prepare",
      "Tokenize text/JSONL into HDF5 shards: trains (or reuses) a SentencePiece tokenizer, splits "
      "documents into train/val, writes DIR/{tokenizer.model,train_*.h5,val_*.h5,prepare.json}");
  cmd->add_option("--input,-i", opts->inputs,
                  "Text files, directories (searched recursively) or JSONL files")
      ->required()
      ->expected(1, -1);
  cmd->add_option("--out,-o", opts->out_dir, "Output directory")->required();
  cmd->add_option("--vocab-size", opts->vocab_size, "Vocabulary size of the trained tokenizer")
      ->capture_default_str()
      ->check(CLI::Range(260, 1 << 24));
  cmd->add_option("--tokenizer", opts->tokenizer,
                  "Use this SentencePiece .model instead of training one");
  cmd->add_option("--model-type", opts->model_type, "Tokenizer model: bpe or unigram")
      ->capture_default_str()
      ->check(CLI::IsMember({"bpe", "unigram"}));
  cmd->add_option("--tokenizer-sentences", opts->tokenizer_sentences,
                  "Lines sampled (deterministically) from the train split to train the tokenizer")
      ->capture_default_str()
      ->check(kPositive);
  cmd->add_option("--val-fraction", opts->val_fraction,
                  "Fraction of documents held out for validation (at least one)")
      ->capture_default_str();
  cmd->add_option("--jsonl-field", opts->jsonl_field, "JSONL field holding the document text")
      ->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Seed for the train/val split and tokenizer sampling")
      ->capture_default_str();
  cmd->add_option("--shard-tokens", opts->shard_tokens,
                  "Start a new shard (at a document boundary) after this many tokens")
      ->capture_default_str();
  cmd->add_option("--doc-split", opts->doc_split,
                  "How plain text files split into documents: blank-lines or file")
      ->capture_default_str()
      ->check(CLI::IsMember({"blank-lines", "file"}));
  cmd->add_option("--threads", opts->threads, "Encoding threads (0: all cores)")
      ->capture_default_str();
  cmd->add_option("--buffer-mb", st->buffer_mb,
                  "MB of documents in flight between reading and writing shards: with the tokenizer's "
                  "sample (--tokenizer-sentences) and the largest document, this bounds memory, not the "
                  "corpus size; the output does not depend on it")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 30));
  cmd->add_flag("--force", opts->force, "Replace a non-empty output directory");
  cmd->add_flag("--quiet,-q", st->quiet, "No progress output");
  cmd->add_flag("--verbose", opts->verbose, "Show SentencePiece's training log");
  cmd->callback([st]() {
    st->opts.progress = !st->quiet;
    st->opts.buffer_bytes = st->buffer_mb << 20;
    data::prepare(st->opts);
  });
}

}  // namespace gta::cli
