#include "bridge/supervisor/file_watch.hpp"
#include "bridge/observability/log.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sys/inotify.h>
#include <unistd.h>
#include <utility>

namespace fs = std::filesystem;

namespace trestle::supervisor {
namespace {
constexpr std::size_t max_dirs = 8192;   // beyond it, a warning: inotify watches are a per-user budget
constexpr uint32_t dir_events = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ONLYDIR;
}

bool skipped_dir(const std::string& name) {
    return name.empty() || name[0] == '.' || name == "__pycache__" || name == "node_modules" || name == "site-packages";
}

file_watch::file_watch(std::chrono::milliseconds debounce)
    : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)), debounce_(debounce) {}

file_watch::~file_watch() {
    if (fd_ >= 0) ::close(fd_);
}

bool file_watch::watch_dir(const std::string& dir, std::string& why) {
    if (fd_ < 0) {
        why = std::string("inotify: ") + std::strerror(errno);
        return false;
    }
    for (auto& [wd, d] : dirs_)
        if (d == dir) return true;
    if (dirs_.size() >= max_dirs) {
        why = "more than " + std::to_string(max_dirs) + " directories; not watching " + dir;
        return false;
    }
    int wd = ::inotify_add_watch(fd_, dir.c_str(), dir_events);
    if (wd < 0) {
        why = "cannot watch " + dir + ": " + std::strerror(errno);
        return false;
    }
    dirs_[wd] = dir;
    return true;
}

bool file_watch::add_tree(const std::string& root, std::string& why) {
    std::error_code ec;
    fs::path abs = fs::absolute(root, ec).lexically_normal();
    if (ec || !fs::is_directory(abs, ec)) {
        why = root + ": not a directory";
        return false;
    }
    std::string top = abs.string();
    if (top.size() > 1 && top.back() == '/') top.pop_back();
    if (!watch_dir(top, why)) return false;
    trees_.push_back(top);
    fs::recursive_directory_iterator it(abs, fs::directory_options::skip_permission_denied, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
        if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
        std::string name = it->path().filename().string();
        if (skipped_dir(name) || fs::exists(it->path() / "pyvenv.cfg", ec)) {
            it.disable_recursion_pending();
            continue;
        }
        std::string more;
        if (!watch_dir(it->path().string(), more)) {
            log::warning("--reload: " + more);
            if (dirs_.size() >= max_dirs) break;
        }
    }
    return true;
}

bool file_watch::add_file(const std::string& path, std::string& why) {
    std::error_code ec;
    fs::path abs = fs::absolute(path, ec).lexically_normal();
    std::string dir = abs.parent_path().string();
    if (!watch_dir(dir, why)) return false;
    files_[dir].push_back(abs.filename().string());
    return true;
}

void file_watch::read_events() {
    alignas(inotify_event) char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n <= 0) return;
        for (char* p = buf; p < buf + n;) {
            auto* ev = reinterpret_cast<inotify_event*>(p);
            p += sizeof(inotify_event) + ev->len;
            auto d = dirs_.find(ev->wd);
            if (d == dirs_.end()) continue;
            if (ev->mask & IN_IGNORED) {
                dirs_.erase(d);
                continue;
            }
            std::string name = ev->len ? std::string(ev->name) : std::string();
            std::string full = d->second + "/" + name;
            bool in_tree = false;
            for (auto& t : trees_)
                if (d->second == t || d->second.starts_with(t + "/")) in_tree = true;
            if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)) && in_tree && !skipped_dir(name)) {
                std::string why;
                if (!watch_dir(full, why)) log::warning("--reload: " + why);
                continue;
            }
            bool wanted = in_tree && name.size() > 3 && name.ends_with(".py");
            if (auto f = files_.find(d->second); f != files_.end())
                for (auto& file : f->second)
                    if (file == name) wanted = true;
            if (!wanted) continue;
            changed_ = full;
            due_ = std::chrono::steady_clock::now() + debounce_;
        }
    }
}

std::string file_watch::take_due(std::chrono::steady_clock::time_point now) {
    if (now < due_) return {};
    due_ = std::chrono::steady_clock::time_point::max();
    return std::exchange(changed_, std::string());
}

} // namespace trestle::supervisor
