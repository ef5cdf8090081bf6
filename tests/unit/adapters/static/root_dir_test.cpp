#include "adapters/static/root_dir.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace trestle::statics {
namespace {

namespace fs = std::filesystem;

// tmp/
//   secret.txt
//   root/
//     a.txt  sub/b.txt
//     in_link -> sub/b.txt        rel_dir -> sub         sub/up -> ../a.txt
//     via_tmp -> ../root/a.txt (leaves the root, if only for a step)
//     out_link -> ../secret.txt   abs_link -> /.../secret.txt
//     fifo
class root_dir_test : public testing::TestWithParam<root_dir::resolver> {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/trestle-root-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        tmp_ = tmpl;
        root_ = tmp_ / "root";
        fs::create_directories(root_ / "sub");
        std::ofstream(tmp_ / "secret.txt") << "secret";
        std::ofstream(root_ / "a.txt") << "a";
        std::ofstream(root_ / "sub" / "b.txt") << "b";
        fs::create_symlink("sub/b.txt", root_ / "in_link");
        fs::create_symlink("sub", root_ / "rel_dir");
        fs::create_symlink("../a.txt", root_ / "sub" / "up");
        fs::create_symlink("../root/a.txt", root_ / "via_tmp");
        fs::create_symlink("../secret.txt", root_ / "out_link");
        fs::create_symlink(tmp_ / "secret.txt", root_ / "abs_link");
        ASSERT_EQ(::mkfifo((root_ / "fifo").c_str(), 0644), 0);
    }
    void TearDown() override { fs::remove_all(tmp_); }

    // The file's content, or "-errno".
    std::string read(const root_dir& r, const std::string& rel) {
        int fd = r.open(rel);
        if (fd < 0) return "-" + std::to_string(-fd);
        char buf[64];
        ssize_t n = ::read(fd, buf, sizeof buf);
        ::close(fd);
        return n < 0 ? "read error" : std::string(buf, static_cast<std::size_t>(n));
    }
    bool openat2_missing() {
        if (GetParam() != root_dir::resolver::openat2) return false;
        return !root_dir(root_.string(), false).uses_openat2();
    }

    fs::path tmp_, root_;
};

TEST_P(root_dir_test, opens_files_beneath) {
    if (openat2_missing()) GTEST_SKIP() << "no openat2 here";
    root_dir r(root_.string(), false, GetParam());
    EXPECT_EQ(read(r, "a.txt"), "a");
    EXPECT_EQ(read(r, "sub/b.txt"), "b");
    EXPECT_EQ(read(r, "missing"), "-" + std::to_string(ENOENT));
    EXPECT_EQ(read(r, "a.txt/x"), "-" + std::to_string(ENOTDIR));
    int fd = r.open("");
    ASSERT_GE(fd, 0);
    struct stat st{};
    ASSERT_EQ(::fstat(fd, &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    ::close(fd);
}

TEST_P(root_dir_test, symlinks_out_of_the_root_are_refused) {
    if (openat2_missing()) GTEST_SKIP() << "no openat2 here";
    root_dir r(root_.string(), false, GetParam());
    EXPECT_LT(r.open("out_link"), 0);
    EXPECT_LT(r.open("abs_link"), 0);
    EXPECT_LT(r.open("out_link", true), 0);
}

TEST_P(root_dir_test, symlinks_within_the_root) {
    if (openat2_missing()) GTEST_SKIP() << "no openat2 here";
    root_dir r(root_.string(), false, GetParam());
    if (GetParam() == root_dir::resolver::walk) {
        // Without openat2, no symlink is followed at all.
        EXPECT_LT(r.open("in_link"), 0);
        EXPECT_LT(r.open("rel_dir/b.txt"), 0);
        EXPECT_EQ(r.open("in_link", true), -ELOOP);
        return;
    }
    EXPECT_EQ(read(r, "in_link"), "b");
    EXPECT_EQ(read(r, "rel_dir/b.txt"), "b");
    EXPECT_EQ(read(r, "sub/up"), "a");   // ".." in the target, staying beneath
    EXPECT_LT(r.open("via_tmp"), 0);     // RESOLVE_BENEATH refuses any step above
}

TEST_P(root_dir_test, follow_symlinks_lets_them_out) {
    if (openat2_missing()) GTEST_SKIP() << "no openat2 here";
    root_dir r(root_.string(), true, GetParam());
    EXPECT_EQ(read(r, "out_link"), "secret");
    EXPECT_EQ(read(r, "abs_link"), "secret");
    EXPECT_EQ(read(r, "in_link"), "b");
}

TEST_P(root_dir_test, a_fifo_does_not_block) {
    if (openat2_missing()) GTEST_SKIP() << "no openat2 here";
    root_dir r(root_.string(), false, GetParam());
    int fd = r.open("fifo");   // O_NONBLOCK: returns at once, with no writer
    ASSERT_GE(fd, 0);
    struct stat st{};
    ASSERT_EQ(::fstat(fd, &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    ::close(fd);
}

INSTANTIATE_TEST_SUITE_P(resolvers, root_dir_test,
                         testing::Values(root_dir::resolver::openat2, root_dir::resolver::walk),
                         [](const auto& info) {
                             return std::string(info.param == root_dir::resolver::openat2 ? "openat2" : "walk");
                         });

TEST(root_dir, refuses_what_is_not_a_directory) {
    EXPECT_THROW(root_dir("/nonexistent/trestle/root", false), std::runtime_error);
    EXPECT_THROW(root_dir("/etc/hostname", false), std::runtime_error);
    try {
        root_dir("/nonexistent/trestle/root", false);
    } catch (const std::runtime_error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("/nonexistent/trestle/root"), std::string::npos);
        EXPECT_EQ(what.find('\n'), std::string::npos);
    }
}

} // namespace
} // namespace trestle::statics
