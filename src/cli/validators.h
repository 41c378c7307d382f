// Option validators whose errors say what was expected in words. CLI11's PositiveNumber and
// NonNegativeNumber report a failure as "Value -3 not in range 0.000000 to <DBL_MAX written out,
// 300 digits>"; these report "--batch: must be > 0, got -3". Their names (shown in --help as
// INT:POSITIVE) are CLI11's.
#pragma once
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <string>

namespace gta::cli {

namespace detail {
// A validator of numbers v with v > bound (strict) or v >= bound; text that is not a number is
// left to the option's own conversion, which names it.
inline CLI::Validator number_bound(double bound, bool strict, const char* name) {
  return CLI::Validator(
      [bound, strict](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return {};
        if (strict ? v > bound : v >= bound) return {};
        return fmt::format("must be {} {}, got {}", strict ? ">" : ">=", bound, s);
      },
      name);
}
}  // namespace detail

inline const CLI::Validator kPositive = detail::number_bound(0, true, "POSITIVE");
inline const CLI::Validator kNonNegative = detail::number_bound(0, false, "NONNEGATIVE");

}  // namespace gta::cli
