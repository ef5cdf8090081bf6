#include "adapters/static/http_date.hpp"
#include "bridge/net/http_date.hpp"

#include <array>
#include <cctype>

namespace trestle::statics {

namespace {

// A cursor over the field value; every reader returns false on a mismatch.
struct reader {
    std::string_view s;
    std::size_t i = 0;

    bool done() const { return i == s.size(); }
    bool lit(std::string_view x) {
        if (s.substr(i, x.size()) != x) return false;
        i += x.size();
        return true;
    }
    // Exactly n digits (n == 0: one or more).
    bool digits(int n, int& v) {
        std::size_t start = i;
        v = 0;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && (n == 0 || i - start < std::size_t(n))) {
            if (v > 100000) return false;
            v = v * 10 + (s[i++] - '0');
        }
        return n == 0 ? i > start : i - start == std::size_t(n);
    }
    bool letters(std::size_t min, std::size_t max) {
        std::size_t start = i;
        while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
        return i - start >= min && i - start <= max;
    }
    bool month(int& m) {
        for (int k = 0; k < 12; ++k)
            if (lit(net::month_abbrev[static_cast<std::size_t>(k)])) {
                m = k;
                return true;
            }
        return false;
    }
    bool time_of_day(std::tm& tm) {
        return digits(2, tm.tm_hour) && lit(":") && digits(2, tm.tm_min) && lit(":") && digits(2, tm.tm_sec);
    }
};

std::optional<std::time_t> to_time(std::tm tm) {
    static constexpr int days_in[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (tm.tm_mday < 1 || tm.tm_mday > days_in[tm.tm_mon] || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return std::nullopt;
    if (tm.tm_year < 0) return std::nullopt;   // before 1900
    tm.tm_year -= 1900;
    tm.tm_isdst = 0;
    int mday = tm.tm_mday;
    std::time_t t = timegm(&tm);   // normalizes tm: 29 Feb 1995 becomes 1 Mar
    if (tm.tm_mday != mday) return std::nullopt;
    return t;
}

} // namespace

std::optional<std::time_t> parse_http_date(std::string_view s) {
    std::tm tm{};
    int year = 0;
    {   // IMF-fixdate
        reader r{s};
        if (r.letters(3, 3) && r.lit(", ") && r.digits(2, tm.tm_mday) && r.lit(" ") && r.month(tm.tm_mon) &&
            r.lit(" ") && r.digits(4, year) && r.lit(" ") && r.time_of_day(tm) && r.lit(" GMT") && r.done()) {
            tm.tm_year = year;
            return to_time(tm);
        }
    }
    {   // RFC 850: two-digit year, read as 19xx/20xx around 1970
        reader r{s};
        if (r.letters(6, 9) && r.lit(", ") && r.digits(2, tm.tm_mday) && r.lit("-") && r.month(tm.tm_mon) &&
            r.lit("-") && r.digits(2, year) && r.lit(" ") && r.time_of_day(tm) && r.lit(" GMT") && r.done()) {
            tm.tm_year = year < 70 ? 2000 + year : 1900 + year;
            return to_time(tm);
        }
    }
    {   // asctime: the day is space-padded
        reader r{s};
        if (r.letters(3, 3) && r.lit(" ") && r.month(tm.tm_mon) && r.lit(" ")) {
            r.lit(" ");
            if (r.digits(0, tm.tm_mday) && r.lit(" ") && r.time_of_day(tm) && r.lit(" ") && r.digits(4, year) &&
                r.done()) {
                tm.tm_year = year;
                return to_time(tm);
            }
        }
    }
    return std::nullopt;
}

} // namespace trestle::statics
