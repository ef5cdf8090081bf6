// --reload's watcher on a real directory tree: a *.py edit (also in a
// subdirectory made after the start), the watched config file, debouncing,
// and what is ignored (other files, __pycache__, hidden directories).
#include "bridge/supervisor/file_watch.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <poll.h>
#include <unistd.h>

namespace trestle::supervisor {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct tree {
    fs::path root = fs::temp_directory_path() / ("trestle-watch-" + std::to_string(::getpid()));
    tree() {
        fs::remove_all(root);
        fs::create_directories(root / "pkg");
        fs::create_directories(root / "__pycache__");
        fs::create_directories(root / ".git");
    }
    ~tree() { fs::remove_all(root); }
    void write(const fs::path& rel, const char* text) { std::ofstream(root / rel) << text; }
};

// Reads events for up to `wait`, and returns what became due (the debounce is 0 here).
std::string changed(file_watch& w, std::chrono::milliseconds wait = 500ms) {
    auto end = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < end) {
        pollfd p{w.fd(), POLLIN, 0};
        if (::poll(&p, 1, 20) > 0) w.read_events();
        std::string c = w.take_due(std::chrono::steady_clock::now());
        if (!c.empty()) return c;
    }
    return {};
}

TEST(file_watch, python_files_in_the_tree_and_new_directories) {
    tree t;
    file_watch w(0ms);
    std::string why;
    ASSERT_TRUE(w.add_tree(t.root.string(), why)) << why;
    EXPECT_EQ(w.watched_dirs(), 2u);   // the root and pkg; not __pycache__ or .git
    t.write("app.py", "x = 1\n");
    EXPECT_EQ(changed(w), (t.root / "app.py").string());
    t.write("pkg/mod.py", "y = 1\n");
    EXPECT_EQ(changed(w), (t.root / "pkg/mod.py").string());
    fs::create_directories(t.root / "later");
    changed(w, 100ms);   // lets the new directory's watch be added
    t.write("later/new.py", "z = 1\n");
    EXPECT_EQ(changed(w), (t.root / "later/new.py").string());
}

TEST(file_watch, other_files_and_skipped_directories_are_ignored) {
    tree t;
    file_watch w(0ms);
    std::string why;
    ASSERT_TRUE(w.add_tree(t.root.string(), why)) << why;
    t.write("notes.txt", "no\n");
    t.write("__pycache__/app.cpython-311.pyc", "no\n");
    t.write(".git/config.py", "no\n");
    EXPECT_EQ(changed(w, 200ms), "");
}

TEST(file_watch, a_single_file_and_a_rename_over_it) {
    tree t;
    t.write("trestle.toml", "[server]\n");
    file_watch w(0ms);
    std::string why;
    ASSERT_TRUE(w.add_file((t.root / "trestle.toml").string(), why)) << why;
    t.write("other.toml", "x\n");
    EXPECT_EQ(changed(w, 200ms), "");
    t.write("trestle.toml.tmp", "[server]\nthreads = 2\n");
    fs::rename(t.root / "trestle.toml.tmp", t.root / "trestle.toml");
    EXPECT_EQ(changed(w), (t.root / "trestle.toml").string());
}

TEST(file_watch, a_burst_is_one_change_after_the_quiet_time) {
    tree t;
    file_watch w(150ms);
    std::string why;
    ASSERT_TRUE(w.add_tree(t.root.string(), why)) << why;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) t.write("app.py", "x = 2\n");
    std::string c = changed(w, 1000ms);
    EXPECT_EQ(c, (t.root / "app.py").string());
    EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
    EXPECT_EQ(changed(w, 300ms), "");   // reported once
}

TEST(file_watch, a_missing_directory_is_an_error) {
    file_watch w(0ms);
    std::string why;
    EXPECT_FALSE(w.add_tree("/nonexistent/trestle", why));
    EXPECT_NE(why.find("not a directory"), std::string::npos);
}

} // namespace
} // namespace trestle::supervisor
