#pragma once
// HTTP dates (RFC 9110 5.6.7) for Last-Modified and the date-based
// preconditions. Locale-independent, no clock. The formatter lives in
// bridge/net/http_date, shared with the Date header and the access log.
#include "bridge/net/http_date.hpp"

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace trestle::statics {

// "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate): the server's one formatter.
using net::format_http_date;

// Reads the three forms a recipient must accept: IMF-fixdate, the obsolete
// RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime's
// ("Sun Nov  6 08:49:37 1994"). nullopt for anything else.
std::optional<std::time_t> parse_http_date(std::string_view s);

} // namespace trestle::statics
