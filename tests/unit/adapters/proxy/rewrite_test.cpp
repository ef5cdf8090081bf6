#include "adapters/proxy/rewrite.hpp"
#include "tests/unit/support/routed.hpp"

#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace trestle::proxy {
namespace {

// Beast's code for a field name, as the request and response parsers record it.
int code(std::string_view name) { return static_cast<int>(boost::beast::http::string_to_field(name)); }

net::request_head head(std::string method, std::string target, std::vector<net::header_field> fields) {
    net::request_head h;
    h.method = std::move(method);
    h.target = std::move(target);
    for (auto& f : fields) f.known = code(f.name);
    h.headers = std::move(fields);
    return h;
}

net::endpoint_info peer(std::string addr, bool trusted = false, std::string scheme = "http") {
    net::endpoint_info ep;
    ep.remote_addr = addr;
    ep.peer_addr = addr;
    ep.scheme = std::move(scheme);
    ep.trusted_peer = trusted;
    return ep;
}

// The target for the upstream of a request routed to a mount at `prefix`.
std::optional<std::string> target_under(net::request_head h, const std::string& prefix,
                                        const std::optional<std::string>& upstream_path) {
    if (!test_support::route_to_mount(h, prefix)) return std::nullopt;   // refused (400) before any mount sees it
    return upstream_target(h, upstream_path);
}

// The request line and the fields of a head, for assertions.
struct parsed {
    std::string line;
    std::vector<std::pair<std::string, std::string>> fields;
    int count(const std::string& name) const {
        return static_cast<int>(std::count_if(fields.begin(), fields.end(), [&](auto& f) { return f.first == name; }));
    }
    std::string get(const std::string& name) const {
        for (auto& f : fields)
            if (f.first == name) return f.second;
        return "<absent>";
    }
};

parsed parse(const std::string& h) {
    parsed p;
    EXPECT_TRUE(h.ends_with("\r\n\r\n"));
    std::size_t pos = h.find("\r\n");
    p.line = h.substr(0, pos);
    pos += 2;
    while (pos < h.size() - 2) {
        std::size_t end = h.find("\r\n", pos);
        std::string l = h.substr(pos, end - pos);
        std::size_t colon = l.find(": ");
        p.fields.emplace_back(l.substr(0, colon), l.substr(colon + 2));
        pos = end + 2;
    }
    return p;
}

forward_options to(std::string_view host) {
    forward_options o;
    o.upstream_host = host;
    return o;
}

// ---- the request-target ----------------------------------------------------

TEST(upstream_target, without_a_path_the_uri_goes_unchanged) {
    auto h = head("GET", "/billing/a%20b/c?x=1&y", {});
    EXPECT_EQ(target_under(h, "/billing", std::nullopt), "/billing/a%20b/c?x=1&y");
    h.target = "/billing";
    EXPECT_EQ(target_under(h, "/billing", std::nullopt), "/billing");
}

TEST(upstream_target, a_path_replaces_the_prefix) {
    auto h = head("GET", "/billing/x/y?q=1", {});
    EXPECT_EQ(target_under(h, "/billing", std::string("/")), "/x/y?q=1");
    EXPECT_EQ(target_under(h, "/billing", std::string("/api")), "/api/x/y?q=1");
    EXPECT_EQ(target_under(h, "/billing", std::string("/api/")), "/api/x/y?q=1");
    h.target = "/billing";
    EXPECT_EQ(target_under(h, "/billing", std::string("/")), "/");
    EXPECT_EQ(target_under(h, "/billing", std::string("/api")), "/api");
    h.target = "/billing/";
    EXPECT_EQ(target_under(h, "/billing", std::string("/api")), "/api/");
    h.target = "/billing?";
    EXPECT_EQ(target_under(h, "/billing", std::string("/api")), "/api?");
}

TEST(upstream_target, at_the_root_the_path_is_prepended) {
    auto h = head("GET", "/x?q", {});
    EXPECT_EQ(target_under(h, "", std::string("/app/")), "/app/x?q");
    EXPECT_EQ(target_under(h, "", std::nullopt), "/x?q");
}

TEST(upstream_target, absolute_form_becomes_origin_form) {
    auto h = head("GET", "http://example.com/billing/x?q=1", {});
    EXPECT_EQ(target_under(h, "/billing", std::nullopt), "/billing/x?q=1");
    EXPECT_EQ(target_under(h, "/billing", std::string("/")), "/x?q=1");
}

TEST(upstream_target, dot_segments_are_refused) {
    for (const char* t : {"/billing/../admin", "/billing/./x", "/billing/%2e%2E/admin", "/billing/.%2e", "/billing/x/..",
                          "/billing/x%2F..%2Fadmin", "/billing/%2E%2Fx", "/billing/a%00"}) {
        auto h = head("GET", t, {});
        EXPECT_FALSE(target_under(h, "/billing", std::string("/"))) << t;
        EXPECT_FALSE(target_under(h, "/billing", std::nullopt)) << t;
    }
    for (const char* t : {"/billing/...", "/billing/.well-known/x", "/billing/a..b", "/billing/%2e%2e%2e"}) {
        auto h = head("GET", t, {});
        EXPECT_TRUE(target_under(h, "/billing", std::string("/"))) << t;
    }
    EXPECT_EQ(target_under(head("OPTIONS", "*", {}), "", std::nullopt), "*");
}

// Issue 10 item 15: the prefix is matched on the decoded path, as the mount
// table does; the rest goes as the client wrote it.
TEST(upstream_target, an_encoded_prefix_is_replaced_and_the_rest_kept_as_sent) {
    auto h = head("GET", "/%62illing/a%20b?q", {});
    EXPECT_EQ(target_under(h, "/billing", std::string("/api")), "/api/a%20b?q");
    h.target = "/billing%2Fx%2Fy";
    EXPECT_EQ(target_under(h, "/billing", std::string("/api/")), "/api/x%2Fy");
    h.target = "//billing//x";
    EXPECT_EQ(target_under(h, "/billing", std::string("/api")), "/api//x");
    h.target = "/my%20app/x";
    EXPECT_EQ(target_under(h, "/my app", std::string("/")), "/x");
    h.target = "/billing%2F";
    EXPECT_EQ(target_under(h, "/billing", std::string("/api")), "/api/");
}

// Issue 10 item 7: only the upgrades a mount allows are tunnelled.
TEST(upgrade_allowed, every_offered_protocol_must_be_allowed) {
    std::vector<std::string> ws{"websocket"};
    auto h = head("GET", "/x", {{"Connection", "Upgrade", 0}, {"Upgrade", "WebSocket", 0}});
    h.upgrade = true;
    EXPECT_TRUE(upgrade_allowed(h, ws));
    h.headers[1].value = "h2c";
    EXPECT_FALSE(upgrade_allowed(h, ws));
    h.headers[1].value = "websocket, h2c";
    EXPECT_FALSE(upgrade_allowed(h, ws));
    EXPECT_TRUE(upgrade_allowed(h, {"websocket", "h2c"}));
    h.headers[1].value = "h2c/1.0";
    EXPECT_TRUE(upgrade_allowed(h, {"h2c"}));
    h.upgrade = false;   // no Connection: upgrade
    EXPECT_FALSE(upgrade_allowed(h, {"h2c"}));
}

TEST(upstream_request_head, an_upgrade_not_tunnelled_goes_without_upgrade_fields) {
    auto h = head("GET", "/x", {{"Host", "h", 0}, {"Connection", "Upgrade, HTTP2-Settings", 0},
                                {"Upgrade", "h2c", 0}, {"HTTP2-Settings", "AAMAAABk", 0}});
    h.upgrade = true;
    auto p = parse(upstream_request_head(h, peer("10.0.0.7"), "/x", to("u")));   // tunnel = false
    EXPECT_EQ(p.count("Upgrade"), 0);
    EXPECT_EQ(p.count("HTTP2-Settings"), 0);
    EXPECT_EQ(p.count("Connection"), 0);
}

// ---- the request head ------------------------------------------------------

TEST(upstream_request_head, request_line_and_host) {
    auto h = head("GET", "/x", {{"Host", "public.example", 0}, {"Accept", "*/*", 0}});
    h.version = 10;
    auto p = parse(upstream_request_head(h, peer("10.0.0.7"), "/y?z", to("127.0.0.1:9001")));
    EXPECT_EQ(p.line, "GET /y?z HTTP/1.1");
    EXPECT_EQ(p.get("Host"), "127.0.0.1:9001");
    EXPECT_EQ(p.count("Host"), 1);
    EXPECT_EQ(p.get("Accept"), "*/*");
    EXPECT_EQ(p.get("X-Forwarded-Host"), "public.example");
}

TEST(upstream_request_head, preserve_host_sends_the_clients) {
    auto h = head("GET", "/x", {{"Host", "public.example", 0}});
    auto o = to("127.0.0.1:9001");
    o.preserve_host = true;
    EXPECT_EQ(parse(upstream_request_head(h, peer("10.0.0.7"), "/x", o)).get("Host"), "public.example");
    // An HTTP/1.0 client may send none.
    auto bare = head("GET", "/x", {});
    EXPECT_EQ(parse(upstream_request_head(bare, peer("10.0.0.7"), "/x", o)).get("Host"), "127.0.0.1:9001");
}

TEST(upstream_request_head, hop_by_hop_fields_and_those_connection_names_are_dropped) {
    auto h = head("GET", "/x", {{"Host", "h", 0},
                                {"Connection", "keep-alive, X-Secret", 0},
                                {"Connection", "Foo", 0},
                                {"Keep-Alive", "timeout=5", 0},
                                {"Proxy-Connection", "keep-alive", 0},
                                {"TE", "trailers", 0},
                                {"Trailer", "X-T", 0},
                                {"Upgrade", "h2c", 0},
                                {"x-secret", "1", 0},
                                {"Foo", "2", 0},
                                {"Expect", "100-continue", 0},
                                {"X_Weird", "3", 0},
                                {"Authorization", "Bearer t", 0}});
    auto p = parse(upstream_request_head(h, peer("10.0.0.7"), "/x", to("u")));
    for (const char* gone : {"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade", "x-secret",
                             "Foo", "Expect", "X_Weird", "Transfer-Encoding", "Content-Length"})
        EXPECT_EQ(p.count(gone), 0) << gone;
    EXPECT_EQ(p.get("Authorization"), "Bearer t");
}

TEST(upstream_request_head, framing_is_the_clients_and_never_both) {
    auto h = head("POST", "/x", {{"Host", "h", 0}, {"Content-Length", "5", 0}});
    h.content_length = 5;
    auto p = parse(upstream_request_head(h, peer("1.2.3.4"), "/x", to("u")));
    EXPECT_EQ(p.get("Content-Length"), "5");
    EXPECT_EQ(p.count("Transfer-Encoding"), 0);

    auto c = head("POST", "/x", {{"Host", "h", 0}, {"Transfer-Encoding", "chunked", 0}});
    c.chunked = true;
    p = parse(upstream_request_head(c, peer("1.2.3.4"), "/x", to("u")));
    EXPECT_EQ(p.get("Transfer-Encoding"), "chunked");
    EXPECT_EQ(p.count("Content-Length"), 0);

    auto none = head("GET", "/x", {{"Host", "h", 0}});
    p = parse(upstream_request_head(none, peer("1.2.3.4"), "/x", to("u")));
    EXPECT_EQ(p.count("Content-Length") + p.count("Transfer-Encoding"), 0);
}

TEST(upstream_request_head, untrusted_forwarding_headers_are_replaced) {
    auto h = head("GET", "/x", {{"Host", "public.example", 0},
                                {"X-Forwarded-For", "6.6.6.6", 0},
                                {"X-Forwarded-Host", "evil", 0},
                                {"X-Forwarded-Proto", "https", 0},
                                {"X-Forwarded-Port", "1", 0},
                                {"Forwarded", "for=6.6.6.6", 0}});
    auto p = parse(upstream_request_head(h, peer("10.0.0.7"), "/x", to("u")));
    EXPECT_EQ(p.get("X-Forwarded-For"), "10.0.0.7");
    EXPECT_EQ(p.get("X-Forwarded-Proto"), "http");
    EXPECT_EQ(p.get("X-Forwarded-Host"), "public.example");
    EXPECT_EQ(p.count("X-Forwarded-Port"), 0);
    EXPECT_EQ(p.count("X-Forwarded-For"), 1);
    EXPECT_EQ(p.get("Forwarded"), "for=10.0.0.7;proto=http;host=public.example");
}

TEST(upstream_request_head, a_trusted_peers_lists_are_extended) {
    auto h = head("GET", "/x", {{"Host", "internal:8000", 0},
                                {"X-Forwarded-For", "203.0.113.9", 0},
                                {"x-forwarded-for", "198.51.100.1", 0},
                                {"X-Forwarded-Host", "shop.example", 0},
                                {"X-Forwarded-Proto", "https", 0},
                                {"X-Forwarded-Port", "443", 0},
                                {"Forwarded", "for=203.0.113.9;proto=https", 0}});
    auto ep = peer("10.0.0.7", true, "https");
    ep.remote_addr = "198.51.100.1";   // what apply_forwarded found
    auto p = parse(upstream_request_head(h, ep, "/x", to("u")));
    EXPECT_EQ(p.get("X-Forwarded-For"), "203.0.113.9, 198.51.100.1, 10.0.0.7");
    EXPECT_EQ(p.get("X-Forwarded-Proto"), "https");
    EXPECT_EQ(p.get("X-Forwarded-Host"), "shop.example");
    EXPECT_EQ(p.get("X-Forwarded-Port"), "443");
    // Forwarded is not the family read (--forwarded-headers x-forwarded): a
    // client could have sent it through the peer. It restarts from the client.
    EXPECT_EQ(p.get("Forwarded"), "for=198.51.100.1;proto=https, for=10.0.0.7;proto=https;host=\"internal:8000\"");
    // The other way round.
    auto o = to("u");
    o.rfc7239 = true;
    p = parse(upstream_request_head(h, ep, "/x", o));
    EXPECT_EQ(p.get("Forwarded"), "for=203.0.113.9;proto=https, for=10.0.0.7;proto=https;host=\"internal:8000\"");
    EXPECT_EQ(p.get("X-Forwarded-For"), "198.51.100.1, 10.0.0.7");
}

TEST(upstream_request_head, forwarded_quotes_ipv6_and_non_tokens) {
    auto h = head("GET", "/x", {{"Host", "[::1]:8000", 0}});
    auto p = parse(upstream_request_head(h, peer("2001:db8::1"), "/x", to("u")));
    EXPECT_EQ(p.get("Forwarded"), "for=\"[2001:db8::1]\";proto=http;host=\"[::1]:8000\"");
    EXPECT_EQ(p.get("X-Forwarded-For"), "2001:db8::1");
    // A unix-socket peer has no address.
    EXPECT_EQ(forwarded_element(peer(""), nullptr), "for=unknown;proto=http");
    std::string odd = "a\"b";
    EXPECT_EQ(forwarded_element(peer("1.2.3.4"), &odd), "for=1.2.3.4;proto=http;host=\"a\\\"b\"");
}

TEST(upstream_request_head, prefix_is_named_only_when_replaced) {
    auto h = head("GET", "/x", {{"Host", "h", 0}});
    auto o = to("u");
    o.prefix = "/billing";
    EXPECT_EQ(parse(upstream_request_head(h, peer("1.2.3.4"), "/x", o)).count("X-Forwarded-Prefix"), 0);
    o.prefix_replaced = true;
    EXPECT_EQ(parse(upstream_request_head(h, peer("1.2.3.4"), "/x", o)).get("X-Forwarded-Prefix"), "/billing");
    auto t = head("GET", "/x", {{"Host", "h", 0}, {"X-Forwarded-Prefix", "/shop/", 0}});
    EXPECT_EQ(parse(upstream_request_head(t, peer("1.2.3.4", true), "/x", o)).get("X-Forwarded-Prefix"), "/shop/billing");
    EXPECT_EQ(parse(upstream_request_head(t, peer("1.2.3.4", false), "/x", o)).get("X-Forwarded-Prefix"), "/billing");
}

TEST(upstream_request_head, tunnel_keeps_upgrade_and_close_asks_for_it) {
    auto h = head("GET", "/ws", {{"Host", "h", 0}, {"Connection", "Upgrade", 0}, {"Upgrade", "websocket", 0},
                                 {"Sec-WebSocket-Key", "k", 0}});
    auto o = to("u");
    o.tunnel = true;
    auto p = parse(upstream_request_head(h, peer("1.2.3.4"), "/ws", o));
    EXPECT_EQ(p.get("Connection"), "upgrade");
    EXPECT_EQ(p.get("Upgrade"), "websocket");
    EXPECT_EQ(p.get("Sec-WebSocket-Key"), "k");
    o.tunnel = false;
    o.close = true;
    p = parse(upstream_request_head(h, peer("1.2.3.4"), "/ws", o));
    EXPECT_EQ(p.get("Connection"), "close");
    EXPECT_EQ(p.count("Upgrade"), 0);
}

// ---- the response ----------------------------------------------------------

TEST(client_response_fields, drops_hop_by_hop_and_what_the_writer_sets) {
    std::vector<net::field_view> f;
    for (auto [n, v] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
             {"Content-Type", "text/plain"},
             {"Connection", "keep-alive, X-Internal"},
             {"Keep-Alive", "timeout=5"},
             {"Transfer-Encoding", "chunked"},
             {"Content-Length", "5"},
             {"Server", "upstream/1.0"},
             {"Date", "yesterday"},
             {"X-Internal", "1"},
             {"Trailer", "X-T"},
             {"Upgrade", "h2c"},
             {"Set-Cookie", "a=1"},
             {"Set-Cookie", "b=2"}})
        f.push_back({n, v, code(n)});
    EXPECT_EQ(client_response_fields(f), "Content-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n");
}

TEST(connection_names, match_tokens_across_fields_whatever_their_case) {
    std::vector<std::string_view> values = {" Close ,X-A", "x-b,,"};
    for (std::string_view n : {"close", "x-a", "X-B"}) EXPECT_TRUE(connection_names(values, n)) << n;
    for (std::string_view n : {"", "x", "x-c", "close ,x-a"}) EXPECT_FALSE(connection_names(values, n)) << n;
}

} // namespace
} // namespace trestle::proxy
