#include "cli/commands.h"

namespace gta::cli {

// Here rather than in main.cpp: the commands set it, and the cli library does not link main.
int& exit_status() {
  static int status = 0;
  return status;
}

}  // namespace gta::cli
