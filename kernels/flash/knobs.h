// The environment knobs of the flash attention kernels, for measurement only (unset, the defaults
// apply; docs/kernels.md lists them). read_knobs() is the one place that reads them: each entry
// point of kernels/flash_attention.h reads them once per call and hands them down, so that a test
// may switch them between calls (tests/test_cuda_flash_attention.cpp, EveryTiling).
#pragma once

namespace gta::kernels::flash {

struct Knobs {
  // GTA_FLASH_FWD_MR, GTA_FLASH_DQ_MR, GTA_FLASH_DKV_MR: 2 (the default) takes 128-row tiles in the
  // mma.sync forward, dQ, dK/dV where the registers allow them (tiling.h); any other value 64.
  int fwd_mr = 2, dq_mr = 2, dkv_mr = 2;
  int split = 0;       // GTA_FLASH_SPLIT=s > 0: cut each dK/dV unit over s CTAs (s must divide it, else 1)
  int dkv_heads = -1;  // GTA_FLASH_DKV_HEADS=0 / 1: the wgmma dK/dV CTA split by keys / by heads
  int streams = 2;     // GTA_FLASH_STREAMS: 2 runs the wgmma dK/dV and dQ on two streams, else one
  bool pair = true;    // GTA_FLASH_PAIR=0: no head pairing in the wgmma forward
  bool wgmma = true;   // GTA_FLASH_WGMMA=0: the mma.sync kernels on Hopper too
};

// The knobs as the environment sets them now.
Knobs read_knobs();

}  // namespace gta::kernels::flash
