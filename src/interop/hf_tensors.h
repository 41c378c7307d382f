// The tensors of a Hugging Face export <-> gta's parameters (`gta export --hf`, `gta import`).
//
// gta names its parameters as transformers' Llama and DeepSeek-V3 do, and its RoPE is the
// rotate-half convention of transformers' Llama (docs/attention.md, "The block"), so most
// tensors pass through unchanged. The exceptions, each exact:
//   - Llama with attention_bias: transformers gives o_proj a bias that gta does not have; the
//     export writes it as zeros, and the import takes only an all-zero one (likewise mlp_bias's
//     gate/up/down biases).
//   - DeepSeek-V3 with rope_interleave (the default, and what gta writes): transformers reads the
//     d_rope features of q_pe and k_pe as interleaved pairs (2i, 2i+1) and regroups them into
//     halves before its rotate-half RoPE. gta's projections produce the halves directly, so the
//     export stores row i of each RoPE block at 2i and row d_rope/2 + i at 2i + 1 (the inverse
//     of the permutation transformers' convert_llama_weights_to_hf applies to Meta's q and k);
//     the import undoes it. The rows are those of q_proj (per head, after its d_nope rows) and
//     the last d_rope rows of kv_a_proj_with_mqa.
//   - Tied embeddings: no lm_head.weight is written; an imported lm_head.weight beside tied
//     embeddings must equal model.embed_tokens.weight.
//   - rotary_emb.inv_freq buffers (older transformers saved them) are dropped on import.
// Names, shapes and missing or extra tensors are then checked by nn::Params::load.
#pragma once
#include <map>
#include <string>

#include "config/config.h"
#include "core/tensor.h"
#include "interop/hf_config.h"

namespace gta::interop {

// gta parameters (CPU) -> the tensors of the export, converted to `dtype`.
std::map<std::string, Tensor> to_hf_tensors(const config::ModelConfig& m, const std::map<std::string, Tensor>& params,
                                            DType dtype);

// The tensors of a transformers checkpoint -> gta parameter tensors (CPU, their stored dtype).
// Throws gta::Error naming `source` and the tensor when one cannot be taken exactly.
std::map<std::string, Tensor> from_hf_tensors(const HfImportedConfig& c, std::map<std::string, Tensor> tensors,
                                              const std::string& source);

}  // namespace gta::interop
