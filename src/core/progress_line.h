// A progress line on stderr. On a terminal it is redrawn in place ("\r", the text, then an erase
// to the end of the line), so that a run shows one live line; elsewhere (a log file, a pipe)
// only whole lines are written, so the log holds no carriage returns.
#pragma once
#include <string>

namespace gta {

class ProgressLine {
 public:
  // Silent when !enabled (ranks other than 0 of a data-parallel run, --quiet).
  explicit ProgressLine(bool enabled = true);
  bool enabled() const { return enabled_; }
  bool tty() const { return tty_; }
  // Redraws the live line (a terminal only; elsewhere nothing is written).
  void redraw(const std::string& text);
  // A whole line; it replaces the live line, which the next redraw() starts again below it.
  void print(const std::string& text);
  // Ends a live line left on the terminal with a newline.
  void finish();

 private:
  bool enabled_, tty_, dirty_ = false;  // dirty_: a live line is on the terminal
};

}  // namespace gta
