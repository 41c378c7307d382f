// After the last test, the caching allocator's free blocks go back to the driver. Without this
// the pool still holds them when the process exits, and compute-sanitizer's memcheck
// --leak-check full (scripts/gpu_sanitize.sh) counts every pooled block as a leak: on an H200 it
// reported 258 errors, of which the 100 it printed were all blocks from device_alloc, hiding
// whether any test left a block live. With the pool emptied, a reported leak is a block that
// something still held at exit.
#include <gtest/gtest.h>

#include "core/cuda_runtime.h"
#include "core/device.h"

namespace {

class ReleaseCudaCache : public ::testing::Environment {
 public:
  void TearDown() override {
    if (gta::cuda_available()) gta::cuda::empty_cache();
  }
};

// Registered before main() runs (gtest_main); gtest owns and deletes the environment.
[[maybe_unused]] ::testing::Environment* const kReleaseCudaCache =
    ::testing::AddGlobalTestEnvironment(new ReleaseCudaCache);

}  // namespace
