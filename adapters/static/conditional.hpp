#pragma once
// Validators of a file and the preconditions of RFC 9110 13 that a static
// GET or HEAD evaluates: If-Match, If-Unmodified-Since, If-None-Match,
// If-Modified-Since, and If-Range for a Range.
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace trestle::statics {

struct validators {
    std::string etag;          // strong, quotes included
    std::time_t last_modified = 0;
};

// A strong ETag from the file's identity: "MTIME.NSEC-SIZE-INODE" in hex,
// with `variant` ("br", "gz") appended so encodings never share a tag.
std::string make_etag(std::uint64_t inode, std::uint64_t size, std::int64_t mtime_sec, long mtime_nsec,
                      std::string_view variant = {});

// The precondition fields of one request (combined across repeated
// fields with ", "), absent when not sent.
struct conditional_fields {
    std::optional<std::string> if_match;
    std::optional<std::string> if_unmodified_since;
    std::optional<std::string> if_none_match;
    std::optional<std::string> if_modified_since;
};

enum class precondition { proceed, not_modified, failed };

// In the order of RFC 9110 13.2.2: If-Match (strong comparison) or else
// If-Unmodified-Since can fail (412); then If-None-Match (weak comparison,
// "*" matches) or else If-Modified-Since (modified no later than the date)
// gives 304. Unparseable dates are ignored.
precondition evaluate_preconditions(const conditional_fields& f, const validators& v);

// Whether a Range may be honoured: an If-Range entity tag must match the
// ETag strongly, an If-Range date must equal Last-Modified exactly.
bool if_range_holds(std::string_view if_range, const validators& v);

// Whether a list of entity tags (or "*") matches `etag`.
enum class tag_compare { weak, strong };
bool etag_list_matches(std::string_view list, std::string_view etag, tag_compare how);

} // namespace trestle::statics
