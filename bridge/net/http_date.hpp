#pragma once
// The one formatter of dates that go on the wire or into the access log. It
// never consults the C locale (no strftime): an app may call
// setlocale(LC_ALL, ...) in the same process, and HTTP dates are English.
#include <array>
#include <ctime>
#include <string>

namespace trestle::net {

inline constexpr std::array<const char*, 7> day_abbrev{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
inline constexpr std::array<const char*, 12> month_abbrev{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate, RFC 9110 5.6.7).
std::string format_http_date(std::time_t t);

// "[06/Nov/1994:08:49:37 +0000]" (the Common Log Format's timestamp).
std::string format_log_date(std::time_t t);

} // namespace trestle::net
