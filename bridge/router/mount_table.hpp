#pragma once
// The mount table: the longest prefix wins, matching whole segments of the
// decoded path (bridge/net/request_path.hpp), the one every handler sees
// (/v2 matches /v2, /v2/x, /%76%32/x and /v2%2Fx, never /v20). The root app
// is mounted at ""; without one, paths no mount claims get 404. A path that
// must be refused (an encoded NUL, a ".." segment) is 400 here, for every
// kind of mount alike.
// resolve() decodes the path once per request and splits the prefix off it
// (request_head::routed): SCRIPT_NAME and PATH_INFO for WSGI, root_path and
// path for ASGI, a static file's name, the rest a proxy sends on.
#include "bridge/core/handler.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace trestle::net { struct request_head; }

namespace trestle::router {

// "/v2/" -> "/v2"; "/" -> ""; "/my%20app" -> "/my app": a prefix is a
// decoded path, as SCRIPT_NAME and root_path are. Returns false, with `why`
// set, for prefixes that cannot be one (see net::decode_prefix).
bool normalize_prefix(std::string& prefix, std::string& why);

class mount_table {
public:
    // The root handler (may be null) serves everything no other mount claims.
    mount_table(handler* root, const std::string& server_header, std::uint16_t root_metrics_id = 0);
    ~mount_table();
    // prefix already normalized; `metrics_id`: the mount's number in the
    // metrics registry (0 when metrics are off).
    void add(std::string prefix, handler& h, std::uint16_t metrics_id = 0);

    // Once per request, on an io thread: finds the handler, sets
    // head.routed, and asks the handler what the connection must do.
    route resolve(net::request_head& head) const;

private:
    struct mount {
        std::string prefix;
        handler* h;
        std::uint16_t metrics_id;
    };
    std::vector<mount> mounts_;   // longest prefix first
    std::unique_ptr<handler> not_found_;   // before root_, which may refer to it
    std::unique_ptr<handler> bad_path_;
    handler& root_;
    std::uint16_t root_metrics_id_;
};

} // namespace trestle::router
