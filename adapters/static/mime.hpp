#pragma once
// Content-Type by file name extension: a mime.types file (read once) with a
// built-in table under it for the common web types.
#include <string>
#include <string_view>
#include <unordered_map>

namespace trestle::statics {

class mime_types {
public:
    // Only the built-in table.
    mime_types();
    // The file's entries, then the built-in table for extensions it lacks.
    // An unreadable file leaves the built-in table alone.
    explicit mime_types(const std::string& mime_types_file);

    // The Content-Type for a file name (the last path segment is used):
    // "; charset=utf-8" is added to text/* and application/javascript;
    // application/octet-stream when the extension is unknown or missing.
    std::string content_type(std::string_view file_name) const;

    // The bare media type for an extension (no dot, any case); "" if unknown.
    std::string_view lookup(std::string_view extension) const;

    // Parses mime.types text ("type ext ext...", '#' comments) into the
    // table; an extension already present keeps its type.
    void add_from_text(std::string_view text);

private:
    void add_builtin();
    std::unordered_map<std::string, std::string> by_ext_;
};

// The process-wide table: /etc/mime.types plus the built-in one, read on
// first use (a static mount's constructor, at startup).
const mime_types& system_mime_types();

} // namespace trestle::statics
