#pragma once
// Small facts about processes, for the supervisor's log and limits.
#include <cstddef>
#include <string>
#include <sys/types.h>

namespace trestle::supervisor {

// A waitpid() status in words: "exited with status 1", "killed by signal 9 (SIGKILL)".
std::string describe_status(int status);

// Resident memory of `pid` in bytes, from /proc/PID/statm; 0 if unknown.
std::size_t resident_bytes(pid_t pid);

// The absolute path of the program as started (argv[0], found on PATH when
// it has no slash), so that a binary upgrade runs the file now at that
// path, not the deleted one this process was loaded from. "" if not found.
std::string program_path(const char* argv0);

} // namespace trestle::supervisor
