#include "bridge/net/http_date.hpp"

namespace trestle::net {

namespace {

void two_digits(std::string& out, int v) {
    out += static_cast<char>('0' + v / 10 % 10);
    out += static_cast<char>('0' + v % 10);
}

void clock_time(std::string& out, const std::tm& tm) {
    two_digits(out, tm.tm_hour);
    out += ':';
    two_digits(out, tm.tm_min);
    out += ':';
    two_digits(out, tm.tm_sec);
}

std::tm utc(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    return tm;
}

} // namespace

std::string format_http_date(std::time_t t) {
    std::tm tm = utc(t);
    std::string out;
    out.reserve(29);
    out += day_abbrev[static_cast<std::size_t>(tm.tm_wday)];
    out += ", ";
    two_digits(out, tm.tm_mday);
    out += ' ';
    out += month_abbrev[static_cast<std::size_t>(tm.tm_mon)];
    out += ' ';
    out += std::to_string(tm.tm_year + 1900);
    out += ' ';
    clock_time(out, tm);
    out += " GMT";
    return out;
}

std::string format_log_date(std::time_t t) {
    std::tm tm = utc(t);
    std::string out;
    out.reserve(28);
    out += '[';
    two_digits(out, tm.tm_mday);
    out += '/';
    out += month_abbrev[static_cast<std::size_t>(tm.tm_mon)];
    out += '/';
    out += std::to_string(tm.tm_year + 1900);
    out += ':';
    clock_time(out, tm);
    out += " +0000]";
    return out;
}

} // namespace trestle::net
