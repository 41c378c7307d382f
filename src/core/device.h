// Where a tensor's storage lives. Every tensor carries its device; ops dispatch on it so the
// CUDA backend plugs in beside the CPU one without changing callers.
#pragma once
#include <cstdint>
#include <string>

namespace gta {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::cuda, i}; }
  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

// Parses "cpu", "cuda", "cuda:N"; throws gta::Error otherwise.
Device parse_device(const std::string& s);
// What a user's device setting means for this process: "auto" is this process's GPU when the
// build has CUDA and a GPU is visible, else the CPU; "cuda" is cuda:<local_rank> (one process per
// GPU under mpirun); "cpu" and "cuda:N" as parse_device. A GPU that is not there is an error
// naming the setting (`what`, e.g. "train.device").
Device resolve_device(const std::string& s, int local_rank = 0, const std::string& what = "device");
// True when this build has the CUDA backend and at least one GPU is visible.
bool cuda_available();
int cuda_device_count();

}  // namespace gta
