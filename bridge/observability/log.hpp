#pragma once
#include <string>
#include <string_view>

// The server's error log: one line per event on stderr, with a timestamp and
// a level. Python tracebacks are written to the same stream by CPython.
namespace trestle::log {

enum class level { debug, info, warning, error, critical };

void set_level(std::string_view name);
// Points fd 2 (so this log, CPython's tracebacks and an app's own stderr)
// at `path`, appended. False with `why` set when it cannot be opened.
bool redirect_stderr(const std::string& path, std::string& why);
// SIGUSR1 (logrotate): opens the --error-log file again, if there is one.
// True if there is none; false with `why` if it cannot be opened.
bool reopen_error_log(std::string& why);
bool has_error_log_file();
// A label after the level on every line ("worker 2"), for the processes
// under a supervisor; empty for none.
void set_tag(std::string tag);
bool enabled(level l);
void write(level l, std::string_view msg);

inline void debug(std::string_view m) { if (enabled(level::debug)) write(level::debug, m); }
inline void info(std::string_view m) { write(level::info, m); }
inline void warning(std::string_view m) { write(level::warning, m); }
inline void error(std::string_view m) { write(level::error, m); }
inline void critical(std::string_view m) { write(level::critical, m); }

} // namespace trestle::log
