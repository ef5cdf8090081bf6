#include "adapters/static/static_handler.hpp"

#include "adapters/static/accept_encoding.hpp"
#include "adapters/static/conditional.hpp"
#include "adapters/static/http_date.hpp"
#include "adapters/static/mime.hpp"
#include "adapters/static/path.hpp"
#include "adapters/static/range.hpp"
#include "bridge/net/app_port.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/request_path.hpp"
#include "bridge/net/response_writer.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/observability/log.hpp"

#include <boost/beast/core/string.hpp>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>
#include <sys/stat.h>
#include <unistd.h>

namespace trestle::statics {

namespace {

// An open file and what fstat said about it.
class open_file {
public:
    open_file() = default;
    open_file(open_file&& o) noexcept : fd_(o.fd_), st_(o.st_) { o.fd_ = -1; }
    open_file& operator=(open_file&& o) noexcept {
        std::swap(fd_, o.fd_);
        std::swap(st_, o.st_);
        return *this;
    }
    ~open_file() {
        if (fd_ >= 0) ::close(fd_);
    }

    // 0, or the errno of the failed open or fstat.
    int open(const root_dir& root, const std::string& name, bool path_only = false) {
        int fd = root.open(name, path_only);
        if (fd < 0) return -fd;
        *this = open_file();
        fd_ = fd;
        return ::fstat(fd_, &st_) == 0 ? 0 : errno;
    }
    int release() { return std::exchange(fd_, -1); }
    const struct stat& st() const { return st_; }
    bool regular() const { return fd_ >= 0 && S_ISREG(st_.st_mode); }
    bool directory() const { return fd_ >= 0 && S_ISDIR(st_.st_mode); }

private:
    int fd_ = -1;
    struct stat st_{};
};

// Every value of a field, joined with ", " as RFC 9110 5.3 allows for
// list fields.
std::optional<std::string> field(const net::request_head& h, std::string_view name) {
    std::optional<std::string> v;
    for (const auto& f : h.headers) {
        if (!boost::beast::iequals(f.name, name)) continue;
        if (v) *v += ", ";
        else v.emplace();
        *v += f.value;
    }
    return v;
}

unsigned status_for_errno(int err) {
    switch (err) {
    case EACCES:
    case EPERM: return 403;
    // Missing, a file used as a directory, a refused symlink (ELOOP from
    // the walk or a magic link, EXDEV from RESOLVE_BENEATH), a name too
    // long, a socket or a device without a driver.
    case ENOENT:
    case ENOTDIR:
    case ELOOP:
    case EXDEV:
    case ENAMETOOLONG:
    case ENXIO:
    case ENODEV: return 404;
    default: return 500;
    }
}

std::string status_line(unsigned status) {
    return std::to_string(status) + " " + std::string(net::reason_phrase(status));
}

// A short answer of the handler's own: `fields` plus a one-line text body.
void small_response(net::response_writer& w, unsigned status, std::string fields = {}) {
    std::string body = status_line(status) + "\n";
    fields += "Content-Type: text/plain; charset=utf-8\r\n";
    w.set_head(status, status_line(status), std::move(fields), body.size());
    w.emit_head(std::nullopt);
    w.append_body(body);
    w.end_body();
    w.finish(false);
}

const char* suffix(coding c) { return c == coding::br ? ".br" : ".gz"; }

// The file a request gets: the original or a precompressed sibling.
struct selection {
    open_file file;
    const char* encoding = nullptr;   // Content-Encoding, or none
    const char* etag_variant = "";    // keeps the variants' ETags apart
    bool vary = false;                // a sibling exists: the answer depends on Accept-Encoding
};

// Replaces sel.file with the most preferred sibling the client accepts and
// that is a regular file; notes whether any sibling exists.
void pick_precompressed(const root_dir& root, const net::request_head& h, const std::string& name, selection& sel) {
    auto ae = field(h, "accept-encoding");
    accepted_codings acc = ae ? parse_accept_encoding(*ae) : accepted_codings{};
    for (std::size_t i = 0; i < acc.count; ++i) {
        coding c = acc.order[i];
        open_file v;
        if (v.open(root, name + suffix(c)) == 0 && v.regular()) {
            sel.file = std::move(v);
            sel.encoding = c == coding::br ? "br" : "gzip";
            sel.etag_variant = c == coding::br ? "br" : "gz";
            sel.vary = true;
            return;
        }
    }
    for (coding c : {coding::br, coding::gzip}) {
        if (acc.accepts(c)) continue;   // looked at above: not there
        open_file v;
        if (v.open(root, name + suffix(c), true) == 0 && v.regular()) {
            sel.vary = true;
            return;
        }
    }
}

} // namespace

std::unique_ptr<handler> make_handler(const mount_source& m, const services& s) {
    try {
        return std::make_unique<static_handler>(m.spec.files, s.ctx, m.spec.prefix);
    } catch (const std::runtime_error& e) {
        throw mount_error(2, e.what());
    }
}

static_handler::static_handler(const static_mount_options& opt, net::server_context& ctx, std::string prefix)
    : opt_(opt), ctx_(ctx), prefix_(std::move(prefix)), root_(opt.root, opt.follow_symlinks),
      mime_(system_mime_types()) {
    if (!root_.uses_openat2())
        log::info("static " + opt.root + ": openat2 is unavailable; " +
                  (opt.follow_symlinks ? "symlinks are followed anywhere" : "no symlinks are followed"));
}

bool static_handler::submit(std::shared_ptr<net::app_port> ex) {
    net::response_writer w(*ex, ctx_);
    serve(*ex, w);
    return true;
}

void static_handler::serve(net::app_port& ex, net::response_writer& w) const {
    const net::request_head& h = ex.head();
    if (h.method != "GET" && h.method != "HEAD") return small_response(w, 405, "Allow: GET, HEAD\r\n");

    // What lies under the mount in the decoded path, as the router split it.
    decoded_path p = file_path(h.routed.rest());
    if (p.status) return small_response(w, p.status);
    std::string name = p.rel;
    if (p.trailing_slash) {
        if (opt_.index.empty()) return small_response(w, 404);   // no listings
        name = name.empty() ? opt_.index : name + "/" + opt_.index;
    }

    selection sel;
    if (int err = sel.file.open(root_, name)) {
        unsigned status = status_for_errno(err);
        if (status == 500) log::error("static " + opt_.root + ": cannot open '" + name + "': " + std::strerror(err));
        return small_response(w, status);
    }
    if (sel.file.directory() && !p.trailing_slash) {
        std::string location = net::encode_path(prefix_) + "/" + net::encode_path(p.rel) + (p.rel.empty() ? "" : "/");
        if (!h.query().empty()) location += "?" + std::string(h.query());
        return small_response(w, 301, "Location: " + location + "\r\n");
    }
    if (!sel.file.regular()) return small_response(w, 404);
    if (opt_.precompressed) pick_precompressed(root_, h, name, sel);

    const struct stat& st = sel.file.st();
    auto size = static_cast<std::uint64_t>(st.st_size);
    validators v{make_etag(st.st_ino, size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, sel.etag_variant),
                 st.st_mtim.tv_sec};
    // What a 304 must repeat of the 200 (RFC 9110 15.4.5).
    std::string common = "ETag: " + v.etag + "\r\nLast-Modified: " + format_http_date(v.last_modified) + "\r\n";
    if (!opt_.cache_control.empty()) common += "Cache-Control: " + opt_.cache_control + "\r\n";
    if (sel.vary) common += "Vary: Accept-Encoding\r\n";

    conditional_fields cond{field(h, "if-match"), field(h, "if-unmodified-since"), field(h, "if-none-match"),
                            field(h, "if-modified-since")};
    switch (evaluate_preconditions(cond, v)) {
    case precondition::failed: return small_response(w, 412);
    case precondition::not_modified:
        w.set_head(304, status_line(304), std::move(common), std::nullopt);
        w.emit_head(std::nullopt);
        w.end_body();
        w.finish(false);
        return;
    case precondition::proceed: break;
    }

    range_request range;
    if (auto r = field(h, "range")) {
        auto if_range = field(h, "if-range");
        if (!if_range || if_range_holds(*if_range, v)) range = parse_range(*r, size);
    }
    if (range.type == range_request::kind::unsatisfiable)
        return small_response(w, 416, "Content-Range: bytes */" + std::to_string(size) + "\r\n" + common);

    std::string fields = "Content-Type: " + mime_.content_type(name) + "\r\n";
    if (sel.encoding) fields += std::string("Content-Encoding: ") + sel.encoding + "\r\n";
    fields += "Accept-Ranges: bytes\r\n";
    fields += common;
    unsigned status = 200;
    std::uint64_t offset = 0, count = size;
    if (range.type == range_request::kind::single) {
        status = 206;
        offset = range.first;
        count = range.last - range.first + 1;
        fields += "Content-Range: bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) + "/" +
                  std::to_string(size) + "\r\n";
    }
    w.set_head(status, status_line(status), std::move(fields), count);
    w.emit_head(std::nullopt);
    if (!w.no_body() && count > 0) {
        // The head goes first, then the file (sendfile on the io side), then
        // the completion.
        if (ex.try_write(w.out()) == net::app_port::write_result::gone) w.out().clear();
        ex.queue_file({net::unique_fd(sel.file.release()), offset, count});
        w.add_sent(count);
    }
    w.end_body();
    w.finish(false);
}

} // namespace trestle::statics
