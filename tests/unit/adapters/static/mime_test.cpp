#include "adapters/static/mime.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>

namespace trestle::statics {
namespace {

TEST(mime_types, builtin_table) {
    mime_types m;
    EXPECT_EQ(m.content_type("index.html"), "text/html; charset=utf-8");
    EXPECT_EQ(m.content_type("app.JS"), "text/javascript; charset=utf-8");
    EXPECT_EQ(m.content_type("dir/logo.svg"), "image/svg+xml");
    EXPECT_EQ(m.content_type("font.woff2"), "font/woff2");
    EXPECT_EQ(m.content_type("data.json"), "application/json");
}

TEST(mime_types, unknown_and_missing_extensions) {
    mime_types m;
    EXPECT_EQ(m.content_type("blob.unknownext"), "application/octet-stream");
    EXPECT_EQ(m.content_type("Makefile"), "application/octet-stream");
    EXPECT_EQ(m.content_type(".html"), "application/octet-stream");   // a dotfile, no extension
    EXPECT_EQ(m.content_type("trailing."), "application/octet-stream");
    EXPECT_EQ(m.content_type("a.html/b"), "application/octet-stream");
}

TEST(mime_types, parses_mime_types_text) {
    mime_types f;
    f.add_from_text("# comment line\n"
                    "text/x-custom\tcst  CST2 # trailing comment\n"
                    "text/plain txt\r\n"
                    "no-slash-here abc\n"
                    "application/empty\n");
    EXPECT_EQ(f.lookup("cst"), "text/x-custom");
    EXPECT_EQ(f.lookup("CST2"), "text/x-custom");
    EXPECT_EQ(f.lookup("txt"), "text/plain");
    EXPECT_EQ(f.lookup("abc"), "");
}

TEST(mime_types, file_entries_come_first_and_the_table_fills_gaps) {
    char path[] = "/tmp/trestle-mime-XXXXXX";
    int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    std::string text = "application/x-test js\n";
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
    mime_types m(path);
    ::unlink(path);
    EXPECT_EQ(m.content_type("a.js"), "application/x-test");
    EXPECT_EQ(m.content_type("a.css"), "text/css; charset=utf-8");
}

TEST(mime_types, charset_only_for_text) {
    mime_types m;
    m.add_from_text("application/javascript legacyjs\n");
    EXPECT_EQ(m.content_type("a.legacyjs"), "application/javascript; charset=utf-8");
    EXPECT_EQ(m.content_type("a.css"), "text/css; charset=utf-8");
    EXPECT_EQ(m.content_type("a.png"), "image/png");
}

TEST(mime_types, a_missing_file_leaves_the_builtin_table) {
    mime_types m("/nonexistent/mime.types");
    EXPECT_EQ(m.content_type("a.css"), "text/css; charset=utf-8");
}

} // namespace
} // namespace trestle::statics
