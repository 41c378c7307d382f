// Closed-form sizes and costs of a model config, for `gta info`, MFU and the ablation tables.
//   attention multiply-adds per token at context T (causal half, T/2 keys on average):
//       n_q * d_qk * T/2  +  (value heads read per map) * d_v * T/2
//     = n_q (d_qk + d_l) T/2 for GTA,  h * 2 hd * T/2 for MHA/GQA
//   training FLOPs per token = 6 * (GEMM parameters incl. the output head) + 6 * attention madds
//     (2 FLOPs per multiply-add; backward costs twice the forward)
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>

#include "config/config.h"

namespace gta::nn {

struct LayerStats {
  int64_t attn_params = 0, mlp_params = 0, norm_params = 0;
  int64_t kv_elems_per_token = 0;       // cached elements per token
  double attn_madds_per_token = 0;      // at the given T
  double qk_madds_per_pair = 0, v_madds_per_pair = 0;
  int64_t gemm_params = 0;              // parameters used in matrix products
};

struct ModelStats {
  int64_t vocab = 0, seq_len = 0;
  LayerStats layer;  // every layer is the same
  int64_t embedding_params = 0, head_params = 0, total_params = 0, non_embedding_params = 0;
  int64_t kv_elems_per_token = 0, kv_bytes_per_token_bf16 = 0;  // all layers
  double attn_madds_per_token = 0, train_flops_per_token = 0;   // all layers (+ head for FLOPs)
  nlohmann::json to_json() const;
};

ModelStats model_stats(const config::ModelConfig& cfg, int64_t seq_len);

}  // namespace gta::nn
