#pragma once
// How a request's route is named in the metrics (per-route traffic, shadow
// mode), and the route patterns shadow mode matches.
#include <string>
#include <string_view>
#include <vector>

namespace trestle::router {

// `*` stands for any run of characters but '/', `**` for any run at all.
bool glob_match(std::string_view pattern, std::string_view path);

// "GET /orders/:id": the method, the mount's prefix, and the path under it
// as the first of `patterns` that matches it names it, else with each
// segment that names one thing (a number, a UUID, a long token with
// digits) written ":id". `rest` is the decoded path under the mount.
std::string route_name(std::string_view method, std::string_view prefix, std::string_view rest,
                       const std::vector<std::string>& patterns);
// The same, appended to `out` (a buffer kept for reuse: no allocation once
// it is large enough).
void append_route_name(std::string& out, std::string_view method, std::string_view prefix, std::string_view rest,
                       const std::vector<std::string>& patterns);

} // namespace trestle::router
