#include "kernels/flash/knobs.h"

#include <cstdlib>

namespace gta::kernels::flash {

namespace {

// The integer value of the variable, `def` when it is unset or empty.
int knob(const char* name, int def) {
  const char* e = std::getenv(name);
  return e && *e ? std::atoi(e) : def;
}

}  // namespace

Knobs read_knobs() {
  Knobs k;
  k.fwd_mr = knob("GTA_FLASH_FWD_MR", 2);
  k.dq_mr = knob("GTA_FLASH_DQ_MR", 2);
  k.dkv_mr = knob("GTA_FLASH_DKV_MR", 2);
  k.split = knob("GTA_FLASH_SPLIT", 0);
  k.dkv_heads = knob("GTA_FLASH_DKV_HEADS", -1);
  k.streams = knob("GTA_FLASH_STREAMS", 2);
  k.pair = knob("GTA_FLASH_PAIR", 1) != 0;
  // Set but empty counts as 0 here (atoi("") == 0), as it always has.
  const char* wgmma = std::getenv("GTA_FLASH_WGMMA");
  k.wgmma = !(wgmma && std::atoi(wgmma) == 0);
  return k;
}

}  // namespace gta::kernels::flash
