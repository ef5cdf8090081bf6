// The supervisor's process facts: exit statuses in words, a process's
// resident memory, and the program's path for a binary upgrade.
#include "bridge/supervisor/process.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>

namespace trestle::supervisor {
namespace {

int status_of(void (*child)()) {
    pid_t pid = ::fork();
    if (pid == 0) {
        child();
        ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
}

TEST(describe_status, exit_codes_and_signals) {
    EXPECT_EQ(describe_status(status_of([] { ::_exit(3); })), "exited with status 3");
    EXPECT_EQ(describe_status(status_of([] { ::_exit(0); })), "exited with status 0");
    EXPECT_EQ(describe_status(status_of([] {
                  std::signal(SIGKILL, SIG_DFL);
                  ::kill(::getpid(), SIGKILL);
              })),
              "killed by signal 9 (SIGKILL)");
    EXPECT_EQ(describe_status(status_of([] {
                  std::signal(SIGTERM, SIG_DFL);
                  ::kill(::getpid(), SIGTERM);
              })),
              "killed by signal 15 (SIGTERM)");
}

TEST(resident_bytes, this_process_has_some_and_no_process_has_none) {
    EXPECT_GT(resident_bytes(::getpid()), 1u << 20);
    EXPECT_EQ(resident_bytes(0x7ffffff0), 0u);
}

TEST(program_path, absolute_relative_and_on_path) {
    namespace fs = std::filesystem;
    EXPECT_EQ(program_path("/usr/bin/env"), "/usr/bin/env");
    // Relative to the working directory now, not at the upgrade.
    std::string rel = program_path("./bin/x");
    EXPECT_EQ(rel, (fs::current_path() / "bin/x").lexically_normal().string());
    const char* old = std::getenv("PATH");
    std::string saved = old ? old : "";
    ::setenv("PATH", "/nonexistent:/usr/bin", 1);
    EXPECT_EQ(program_path("env"), "/usr/bin/env");
    EXPECT_EQ(program_path("no-such-program-anywhere"), "");
    if (old) ::setenv("PATH", saved.c_str(), 1);
    else ::unsetenv("PATH");
    EXPECT_EQ(program_path(""), "");
}

} // namespace
} // namespace trestle::supervisor
