// Where the binary finds its `trestle` package (issue 11, install): beside
// itself when installed, the source tree only as the build tree's fallback.
#include "bridge/python/package_dir.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace trestle::py {
namespace {

namespace fs = std::filesystem;

class package_dir_test : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/trestle-pkgdir-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        root_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    // Makes DIR/trestle/__init__.py.
    fs::path make_package(const fs::path& dir) {
        fs::create_directories(dir / "trestle");
        std::ofstream(dir / "trestle" / "__init__.py") << "";
        return dir;
    }
    fs::path root_;
};

TEST_F(package_dir_test, installed_tree_beside_the_binary_wins) {
    fs::path installed = make_package(root_ / "prefix/share/trestle/python");
    fs::path source = make_package(root_ / "src/adapters/python");
    EXPECT_EQ(find_package_dir(root_ / "prefix/bin/trestle", "../share/trestle/python", source), installed);
}

TEST_F(package_dir_test, build_tree_falls_back_to_the_source) {
    fs::path source = make_package(root_ / "src/adapters/python");
    fs::create_directories(root_ / "src/build");
    EXPECT_EQ(find_package_dir(root_ / "src/build/trestle", "../share/trestle/python", source), source);
}

TEST_F(package_dir_test, a_directory_without_the_package_does_not_count) {
    // An unrelated share/trestle/python (no trestle/__init__.py) is skipped.
    fs::create_directories(root_ / "prefix/share/trestle/python/trestle");
    fs::path source = make_package(root_ / "src/adapters/python");
    EXPECT_EQ(find_package_dir(root_ / "prefix/bin/trestle", "../share/trestle/python", source), source);
}

TEST_F(package_dir_test, nothing_found_is_empty) {
    EXPECT_TRUE(find_package_dir(root_ / "prefix/bin/trestle", "../share/trestle/python",
                                 root_ / "gone").empty());
    EXPECT_TRUE(find_package_dir({}, "../share/trestle/python", {}).empty());
}

TEST(own_package_dir, the_test_binary_finds_the_source_package) {
    // The unit binary lives in the build tree: no installed package beside it.
    EXPECT_EQ(own_package_dir(), fs::path(TRESTLE_PYTHON_PACKAGE_DIR));
}

} // namespace
} // namespace trestle::py
