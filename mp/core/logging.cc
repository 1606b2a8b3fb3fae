#include "mp/core/logging.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "mp/core/process.h"

namespace mp {

std::string LevelName(int level) {
  switch (level) {
    case NOTSET: return "NOTSET";
    case SUBDEBUG: return "SUBDEBUG";
    case DEBUG: return "DEBUG";
    case INFO: return "INFO";
    case SUBWARNING: return "SUBWARNING";
    case WARNING: return "WARNING";
    case ERROR: return "ERROR";
    case CRITICAL: return "CRITICAL";
    default: return absl::StrCat("Level ", level);
  }
}

void Logger::Log(int level, std::string_view message) const {
  if (!IsEnabledFor(level)) return;
  std::string line = absl::StrCat("[", LevelName(level), "/",
                                  current_process().name(), "] ",
                                  absl::string_view(message.data(), message.size()),
                                  "\n");
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

Logger& get_logger() {
  static Logger* logger = new Logger();
  return *logger;
}

Logger& log_to_stderr(int level) {
  Logger& logger = get_logger();
  logger.AddStderrHandler();
  if (level != NOTSET) logger.SetLevel(level);
  return logger;
}

}  // namespace mp
