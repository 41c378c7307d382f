// Error reporting: every user-facing failure is a gta::Error whose message names the
// file, key or line and what was expected. The CLI prints it and exits non-zero.
#pragma once
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace gta {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// The text of errno, for the message of a failed system call (read it before any other call).
inline std::string errno_str() { return std::strerror(errno); }

}  // namespace gta

// GTA_CHECK(cond, "fmt", args...): throw gta::Error with the formatted message when cond is false.
#define GTA_CHECK(cond, ...)            \
  do {                                  \
    if (!(cond)) ::gta::fail(__VA_ARGS__); \
  } while (0)
