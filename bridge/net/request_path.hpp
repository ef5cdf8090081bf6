#pragma once
// The one decoded path of a request: what the mount table matches and what
// every handler sees (PATH_INFO, the ASGI path, a static file name, the
// rest of the path a proxy sends on). Decoding it once, here, is what keeps
// the router and the apps from reading one target two ways.
//
// The rules (docs/configuration.md, "Paths and mounts"):
// - every %XX escape is decoded, once; a '%' not followed by two hex digits
//   stays as written, as gunicorn and uvicorn leave it;
// - %2F is a '/' like any other escape, as in the PATH_INFO gunicorn and
//   uvicorn give: an app cannot tell it from '/', so the router does not
//   either (raw_path, RAW_URI and REQUEST_URI keep the bytes as sent);
// - an encoded NUL is refused (400): it cannot be carried in a CGI variable
//   and C code that reads the name would stop at it;
// - a ".." segment, however written (%2e%2e, or between %2F), is refused
//   (400): clients resolve dot segments before they send (RFC 3986 5.2.4),
//   and a server or upstream that resolves them later could reach a path
//   that no mount's rules were applied to;
// - mount prefixes match whole segments, skipping empty and "." segments,
//   so "//v2/x" and "/./v2/x" reach /v2 and not the root app.
#include "bridge/net/request.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace trestle::net {

// Decodes `raw` (the path part of a target, undecoded) into `out`. Returns 0,
// or 400 when the path must be refused.
unsigned decode_path(std::string_view raw, std::string& out);

// The decoded path of a request's target (its path part; "*" stays "*").
// Every reader of the path calls this one function, so the router and the
// handlers cannot disagree about what a target means.
unsigned decode_target_path(const request_head& h, std::string& out);

// Decodes a configured mount prefix and normalizes it: no trailing '/', no
// empty or "." segments ("/" is ""). False, with `why` set, if it cannot
// be a path prefix (no leading '/', a control character, '?', '#', an
// encoded NUL, a ".." segment).
bool decode_prefix(std::string& prefix, std::string& why);

// If the decoded `path` lies under the decoded, normalized `prefix`, the
// offset in `path` where the rest begins ("" or starting with '/').
std::optional<std::size_t> match_prefix(std::string_view path, std::string_view prefix);

// The rest of the raw (undecoded) path after the first `segments` segments,
// that is after as many separators ('/' or %2F) as the decoded path has
// before its rest; it begins with '/' when not empty (a leading %2F is
// written as '/').
std::string raw_rest(std::string_view raw, std::size_t segments);

// A decoded path written back for a header (X-Forwarded-Prefix): bytes
// outside RFC 3986's pchar are escaped, '/' stays a separator.
std::string encode_path(std::string_view decoded);

} // namespace trestle::net
