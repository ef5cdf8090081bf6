#include "adapters/static/mime.hpp"

#include <fstream>
#include <sstream>

namespace trestle::statics {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Types for the files a web site is made of, so that a host without (or
// with a sparse) /etc/mime.types still serves them correctly.
constexpr std::pair<const char*, const char*> builtin[] = {
    {"html", "text/html"}, {"htm", "text/html"}, {"css", "text/css"},
    {"js", "text/javascript"}, {"mjs", "text/javascript"}, {"json", "application/json"},
    {"map", "application/json"}, {"webmanifest", "application/manifest+json"},
    {"xml", "application/xml"}, {"txt", "text/plain"}, {"md", "text/markdown"},
    {"csv", "text/csv"}, {"svg", "image/svg+xml"}, {"png", "image/png"},
    {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"gif", "image/gif"},
    {"webp", "image/webp"}, {"avif", "image/avif"}, {"ico", "image/vnd.microsoft.icon"},
    {"wasm", "application/wasm"}, {"woff", "font/woff"}, {"woff2", "font/woff2"},
    {"ttf", "font/ttf"}, {"otf", "font/otf"}, {"pdf", "application/pdf"},
    {"zip", "application/zip"}, {"gz", "application/gzip"}, {"mp4", "video/mp4"},
    {"webm", "video/webm"}, {"mp3", "audio/mpeg"}, {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
};

bool wants_charset(std::string_view type) {
    return type.starts_with("text/") || type == "application/javascript";
}

} // namespace

mime_types::mime_types() { add_builtin(); }

mime_types::mime_types(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (in) {
        std::ostringstream text;
        text << in.rdbuf();
        add_from_text(text.str());
    }
    add_builtin();
}

void mime_types::add_builtin() {
    for (auto [ext, type] : builtin) by_ext_.emplace(ext, type);
}

void mime_types::add_from_text(std::string_view text) {
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        std::string type;
        while (!line.empty()) {
            while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
            std::size_t n = 0;
            while (n < line.size() && !is_space(line[n])) ++n;
            if (n == 0) break;
            std::string_view word = line.substr(0, n);
            line.remove_prefix(n);
            if (type.empty()) {
                if (word.find('/') == std::string_view::npos) break;   // not a type line
                type = lower(word);
            } else {
                by_ext_.emplace(lower(word), type);
            }
        }
    }
}

std::string_view mime_types::lookup(std::string_view ext) const {
    auto it = by_ext_.find(lower(ext));
    return it == by_ext_.end() ? std::string_view{} : std::string_view(it->second);
}

std::string mime_types::content_type(std::string_view name) const {
    if (auto slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
    auto dot = name.rfind('.');
    std::string_view type;
    // ".profile" has no extension; "a." has an empty one.
    if (dot != std::string_view::npos && dot != 0 && dot + 1 < name.size()) type = lookup(name.substr(dot + 1));
    if (type.empty()) return "application/octet-stream";
    std::string out(type);
    if (wants_charset(type)) out += "; charset=utf-8";
    return out;
}

const mime_types& system_mime_types() {
    static const mime_types table("/etc/mime.types");
    return table;
}

} // namespace trestle::statics
