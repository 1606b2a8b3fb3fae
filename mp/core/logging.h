// mp/core/logging.h
// -----------------------------------------------------------------------------
// The `multiprocessing` logger: `mp::log_to_stderr(level)` and
// `mp::get_logger()`, with Python's levels and its line format
//
//   [INFO/Process-1] child process calling self.run()
//
// The logger is process-wide; a child inherits its level and handler at
// fork, as a forked Python child inherits its logging configuration. Each
// record is written to stderr with one write(2), so lines from different
// processes never interleave within a line.

#ifndef MP_CORE_LOGGING_H_
#define MP_CORE_LOGGING_H_

#include <string>
#include <string_view>

#include "absl/strings/str_format.h"

namespace mp {

// Python's logging levels, plus multiprocessing's SUBDEBUG and SUBWARNING.
enum LogLevel : int {
  NOTSET = 0,
  SUBDEBUG = 5,
  DEBUG = 10,
  INFO = 20,
  SUBWARNING = 25,
  WARNING = 30,
  ERROR = 40,
  CRITICAL = 50,
};

// The name Python prints for a level ("INFO", "Level 7" for others).
std::string LevelName(int level);

class Logger {
 public:
  // Records below `level` are dropped. NOTSET: as Python's root default,
  // only WARNING and above pass.
  void SetLevel(int level) { level_ = level; }
  int level() const { return level_; }
  int EffectiveLevel() const { return level_ == NOTSET ? WARNING : level_; }
  bool IsEnabledFor(int level) const {
    return has_handler_ && level >= EffectiveLevel();
  }
  // Sends records to stderr from now on (what log_to_stderr installs).
  void AddStderrHandler() { has_handler_ = true; }
  void RemoveHandlers() { has_handler_ = false; }

  // Writes "[LEVEL/ProcessName] message" if `level` is enabled.
  void Log(int level, std::string_view message) const;

  template <class... Args>
  void Debug(const absl::FormatSpec<Args...>& f, const Args&... a) const {
    if (IsEnabledFor(DEBUG)) Log(DEBUG, absl::StrFormat(f, a...));
  }
  template <class... Args>
  void Info(const absl::FormatSpec<Args...>& f, const Args&... a) const {
    if (IsEnabledFor(INFO)) Log(INFO, absl::StrFormat(f, a...));
  }
  template <class... Args>
  void Warning(const absl::FormatSpec<Args...>& f, const Args&... a) const {
    if (IsEnabledFor(WARNING)) Log(WARNING, absl::StrFormat(f, a...));
  }
  template <class... Args>
  void Error(const absl::FormatSpec<Args...>& f, const Args&... a) const {
    if (IsEnabledFor(ERROR)) Log(ERROR, absl::StrFormat(f, a...));
  }

 private:
  int level_ = NOTSET;
  bool has_handler_ = false;
};

// The process-wide multiprocessing logger (no handler until log_to_stderr).
Logger& get_logger();
// Installs the stderr handler, sets `level` unless it is NOTSET, and returns
// the logger, as multiprocessing.log_to_stderr(level) does.
Logger& log_to_stderr(int level = NOTSET);

}  // namespace mp

#endif  // MP_CORE_LOGGING_H_
