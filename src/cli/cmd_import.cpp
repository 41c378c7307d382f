// gta import DIR --out OUT [--overwrite]
// A transformers model directory as a gta model directory (src/interop/hf_import.h).
#include <cstdio>

#include "cli/commands.h"
#include "interop/hf_import.h"

namespace gta::cli {

namespace {

struct ImportArgs {
  std::string hf_dir, out_dir;
  bool overwrite = false;
};

void run_import(const ImportArgs& a) {
  interop::HfImportOptions o;
  o.hf_dir = a.hf_dir;
  o.out_dir = a.out_dir;
  o.overwrite = a.overwrite;
  const interop::HfImportResult r = interop::import_hf(o);
  std::printf("imported %s (%s: %s attention, %lld parameters) to %s%s\n", a.hf_dir.c_str(),
              interop::hf_arch_name(r.arch), r.model.attention.type.c_str(),
              static_cast<long long>(r.model.num_parameters()), a.out_dir.c_str(),
              r.tokenizer.empty() ? " (no tokenizer.model in it)" : ", with tokenizer.model");
}

}  // namespace

void register_import(CLI::App& app) {
  auto a = std::make_shared<ImportArgs>();
  CLI::App* cmd = app.add_subcommand("import", "Read a Hugging Face model directory (Llama, DeepSeek-V3 MLA, gta export) as gta weights");
  cmd->add_option("dir", a->hf_dir, "Directory with config.json and model.safetensors (save_pretrained)")->required();
  cmd->add_option("--out", a->out_dir, "Output directory: model.safetensors (+ tokenizer.model)")->required();
  cmd->add_flag("--overwrite", a->overwrite, "Replace the output directory when it is not empty");
  cmd->callback([a] { run_import(*a); });
}

}  // namespace gta::cli
