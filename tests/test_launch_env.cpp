// The launcher's environment (distributed/communicator.h): rank variables and a rank's env defaults.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "core/error.h"
#include "distributed/communicator.h"

namespace gta {
namespace {

// Sets (or, with nullopt, removes) one environment variable for a test's scope and restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value->c_str(), 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::optional<std::string>(v) : std::nullopt;
}

TEST(LaunchEnv, ReadsOpenMpiVariables) {
  ScopedEnv size("OMPI_COMM_WORLD_SIZE", "4"), rank("OMPI_COMM_WORLD_RANK", "3"),
      local("OMPI_COMM_WORLD_LOCAL_RANK", "1");
  const dist::LaunchEnv e = dist::detect_launch_env();
  EXPECT_EQ(e.launcher, "open-mpi");
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.local_rank, 1);
}

TEST(LaunchEnv, MalformedVariableIsAnErrorNamingIt) {
  ScopedEnv size("OMPI_COMM_WORLD_SIZE", "two"), rank("OMPI_COMM_WORLD_RANK", "0");
  try {
    dist::detect_launch_env();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("OMPI_COMM_WORLD_SIZE='two'"), std::string::npos) << e.what();
  }
}

TEST(LaunchEnv, RankDefaultsOnlyForSeveralRanksAndNeverOverUserValues) {
  ScopedEnv cdmc("CUDA_DEVICE_MAX_CONNECTIONS", std::nullopt);
  dist::set_rank_env_defaults(dist::LaunchEnv{});  // one process: CUDA's own default stays
  EXPECT_EQ(env("CUDA_DEVICE_MAX_CONNECTIONS"), std::nullopt);
  dist::LaunchEnv two;
  two.world_size = 2;
  dist::set_rank_env_defaults(two);
  EXPECT_EQ(env("CUDA_DEVICE_MAX_CONNECTIONS"), "1");
  setenv("CUDA_DEVICE_MAX_CONNECTIONS", "8", 1);
  dist::set_rank_env_defaults(two);
  EXPECT_EQ(env("CUDA_DEVICE_MAX_CONNECTIONS"), "8");
}

}  // namespace
}  // namespace gta
