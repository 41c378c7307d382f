#include "core/progress_line.h"

#include <unistd.h>

#include <cstdio>

namespace gta {

ProgressLine::ProgressLine(bool enabled) : enabled_(enabled), tty_(::isatty(STDERR_FILENO)) {}

void ProgressLine::redraw(const std::string& text) {
  if (!enabled_ || !tty_) return;
  std::fprintf(stderr, "\r%s\x1b[K", text.c_str());
  std::fflush(stderr);
  dirty_ = true;
}

void ProgressLine::print(const std::string& text) {
  if (!enabled_) return;
  std::fprintf(stderr, "%s%s\n", dirty_ ? "\r\x1b[K" : "", text.c_str());
  std::fflush(stderr);
  dirty_ = false;
}

void ProgressLine::finish() {
  if (dirty_) std::fprintf(stderr, "\n");
  dirty_ = false;
}

}  // namespace gta
