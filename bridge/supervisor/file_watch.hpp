#pragma once
// --reload's watcher: inotify on directory trees, for Python files, and on
// single files (the config). Edits come in bursts (an editor's temporary
// file, a rename, a git checkout of many files): changes() reports one
// change once the tree has been quiet for the debounce time.
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace trestle::supervisor {

class file_watch {
public:
    explicit file_watch(std::chrono::milliseconds debounce = std::chrono::milliseconds(300));
    ~file_watch();
    file_watch(const file_watch&) = delete;
    file_watch& operator=(const file_watch&) = delete;

    // Watches every directory under `dir` but hidden ones, __pycache__,
    // node_modules and virtualenvs, for *.py files. False with `why` if
    // `dir` cannot be watched.
    bool add_tree(const std::string& dir, std::string& why);
    // Watches one file (by its directory, so a rename over it counts).
    bool add_file(const std::string& path, std::string& why);

    int fd() const { return fd_; }           // readable when events wait
    void read_events();                      // call when fd() is readable
    // When the pending change is due (max() if none).
    std::chrono::steady_clock::time_point due() const { return due_; }
    // The changed file if one is due now (then forgotten), else "".
    std::string take_due(std::chrono::steady_clock::time_point now);
    std::size_t watched_dirs() const { return dirs_.size(); }

private:
    bool watch_dir(const std::string& dir, std::string& why);
    int fd_ = -1;
    std::chrono::milliseconds debounce_;
    std::map<int, std::string> dirs_;                 // watch descriptor: directory
    std::map<std::string, std::vector<std::string>> files_;   // directory: file names watched there
    std::vector<std::string> trees_;                  // roots watched for *.py
    std::string changed_;
    std::chrono::steady_clock::time_point due_ = std::chrono::steady_clock::time_point::max();
};

// True for a directory --reload does not descend into.
bool skipped_dir(const std::string& name);

} // namespace trestle::supervisor
