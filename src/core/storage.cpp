#include "core/storage.h"

#include <cstdlib>
#include <cstring>

#include "core/cuda_runtime.h"
#include "core/error.h"

namespace gta {

namespace {
constexpr size_t kCpuAlignment = 64;  // cache line, and enough for AVX-512 loads
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (nbytes == 0) return;
  if (device.is_cpu()) {
    size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    data_ = std::aligned_alloc(kCpuAlignment, rounded);
    GTA_CHECK(data_ != nullptr, "out of host memory allocating {} bytes", nbytes);
  } else {
    data_ = cuda::device_alloc(nbytes, device.index);
  }
}

Storage::~Storage() {
  if (!data_) return;
  if (device_.is_cpu())
    std::free(data_);
  else
    cuda::device_free(data_, device_.index);
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t n) {
  if (n == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu())
    std::memcpy(dst, src, n);
  else
    cuda::copy(dst, dst_dev.is_cuda(), src, src_dev.is_cuda(), n);
}

void zero_bytes(void* dst, Device dev, size_t n) {
  if (n == 0) return;
  if (dev.is_cpu())
    std::memset(dst, 0, n);
  else
    cuda::memset_zero(dst, n, dev.index);
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::cpu();
  if (s == "cuda") return Device::cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      int i = std::stoi(s.substr(5), &used);
      if (used == s.size() - 5 && i >= 0) return Device::cuda(i);
    } catch (const std::exception&) {
    }
  }
  fail("bad device '{}' (expected cpu, cuda or cuda:N)", s);
}

Device resolve_device(const std::string& s, int local_rank, const std::string& what) {
  const int n = cuda_device_count();
  if (s == "auto") return n > 0 ? Device::cuda(local_rank % n) : Device::cpu();
  const Device d = s == "cuda" ? Device::cuda(local_rank) : parse_device(s);
  if (d.is_cuda()) {
    GTA_CHECK(n > 0, "{} {}: this machine has no usable GPU (or gta was built without CUDA); use cpu or auto", what, s);
    GTA_CHECK(d.index < n, "{} {}: GPU {} does not exist ({} visible{})", what, s, d.index, n,
              s == "cuda" ? ", local rank " + std::to_string(local_rank) : "");
  }
  return d;
}

bool cuda_available() { return cuda_device_count() > 0; }
int cuda_device_count() { return cuda::device_count(); }

}  // namespace gta
