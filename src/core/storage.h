// A reference-counted block of bytes on one device. Tensors are views into storages.
#pragma once
#include <cstddef>
#include <memory>

#include "core/device.h"

namespace gta {

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

// Copies n bytes between any two devices (host<->device, device<->device, host<->host).
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t n);
// Sets n bytes to zero on the given device.
void zero_bytes(void* dst, Device dev, size_t n);

}  // namespace gta
