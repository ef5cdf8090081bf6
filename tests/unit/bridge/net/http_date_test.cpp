// The one date formatter (issue 10 item 12): fixed English names whatever
// the C locale says, for the Date header, Last-Modified and the access log.
#include "bridge/net/http_date.hpp"
#include "bridge/net/http_util.hpp"

#include <gtest/gtest.h>

#include <clocale>
#include <cstdio>
#include <memory>
#include <string>

namespace trestle::net {
namespace {

TEST(http_date_format, imf_fixdate_and_log_stamp) {
    EXPECT_EQ(format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    EXPECT_EQ(format_log_date(784111777), "[06/Nov/1994:08:49:37 +0000]");
    EXPECT_EQ(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    EXPECT_EQ(format_log_date(951782400), "[29/Feb/2000:00:00:00 +0000]");
    EXPECT_EQ(format_http_date(4102444799), "Thu, 31 Dec 2099 23:59:59 GMT");
}

// A locale whose month and day names are not English, if the machine has one
// (nothing is installed for the test).
std::string foreign_locale() {
    std::unique_ptr<FILE, int (*)(FILE*)> p(::popen("locale -a 2>/dev/null", "r"), ::pclose);
    if (!p) return {};
    char line[256];
    while (std::fgets(line, sizeof line, p.get())) {
        std::string name(line);
        while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
        if (name.empty() || name == "C" || name == "POSIX" || name.starts_with("C.") || name.starts_with("en_"))
            continue;
        return name;
    }
    return {};
}

TEST(http_date_format, ignores_the_locale) {
    std::string name = foreign_locale();
    if (name.empty()) GTEST_SKIP() << "no non-English locale installed (locale -a)";
    std::string before = setlocale(LC_ALL, nullptr);
    ASSERT_NE(setlocale(LC_ALL, name.c_str()), nullptr) << name;
    std::string date = format_http_date(784111777);
    std::string stamp = format_log_date(784111777);
    std::string now(http_date());
    setlocale(LC_ALL, before.c_str());
    EXPECT_EQ(date, "Sun, 06 Nov 1994 08:49:37 GMT") << name;
    EXPECT_EQ(stamp, "[06/Nov/1994:08:49:37 +0000]") << name;
    EXPECT_EQ(now.size(), 29u) << now;
    EXPECT_EQ(now.substr(now.size() - 4), " GMT") << now;
}

TEST(http_date_format, the_date_header_uses_it) {
    // http_date() caches per second: equal to the formatter at some second
    // around the call.
    std::time_t t0 = std::time(nullptr);
    std::string d(http_date());
    std::time_t t1 = std::time(nullptr);
    bool match = false;
    for (std::time_t t = t0; t <= t1; ++t) match = match || d == format_http_date(t);
    EXPECT_TRUE(match) << d;
}

} // namespace
} // namespace trestle::net
