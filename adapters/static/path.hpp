#pragma once
// How the part of a request path under a static mount becomes a file name
// relative to the mount's root. The rules are strict on purpose: anything
// that could name a file outside the root, or that two layers of software
// could read differently, is refused rather than repaired.
#include <string>
#include <string_view>

namespace trestle::statics {

struct decoded_path {
    // 0 when usable; otherwise the status to answer (400 or 404).
    unsigned status = 0;
    // Segments joined by '/', no leading or trailing '/'; "" is the root.
    std::string rel;
    // The path ended in '/' (or a "." segment): a directory is asked for.
    bool trailing_slash = false;
};

// `rest` is the request path under the mount, already decoded by the core
// (bridge/net/request_path.hpp: escapes undone once, %2F a '/', an encoded
// NUL and ".." segments refused before any handler runs): "" or starting
// with '/'. Checked segment by segment:
// - a NUL, a backslash, a ".." segment and bytes that are not valid UTF-8
//   (overlong forms included) are 400;
// - empty and "." segments are dropped ("a//./b" is "a/b").
decoded_path file_path(std::string_view rest);

// True if `s` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF).
bool valid_utf8(std::string_view s);

} // namespace trestle::statics
