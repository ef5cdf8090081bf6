#include "bridge/router/mount_table.hpp"

#include "bridge/net/request.hpp"

#include <gtest/gtest.h>

namespace trestle::router {
namespace {

// A handler that says what it needs, and records nothing else.
class probe final : public handler {
public:
    explicit probe(duties d = {}) : d_(d) {}
    duties duties_for(const net::request_head&) const override { return d_; }
    bool submit(std::shared_ptr<net::app_port>) override { return true; }

private:
    duties d_;
};

net::request_head get(std::string target) {
    net::request_head h;
    h.method = "GET";
    h.target = std::move(target);
    return h;
}

TEST(mount_table, the_longest_whole_segment_prefix_wins_and_the_path_is_split_once) {
    probe root, v2, v2deep;
    mount_table t(&root, "x");
    t.add("/v2", v2);
    t.add("/v2/deep", v2deep);

    auto h = get("/v2/deep/a%20b?q=1");
    EXPECT_EQ(t.resolve(h).target, &v2deep);
    EXPECT_EQ(h.routed.decoded, "/v2/deep/a b");
    EXPECT_EQ(h.routed.prefix, "/v2/deep");
    EXPECT_EQ(h.routed.rest(), "/a b");
    EXPECT_EQ(h.routed.prefix_segments(), 2u);

    h = get("/%76%32//x%2Fy");
    EXPECT_EQ(t.resolve(h).target, &v2);
    EXPECT_EQ(h.routed.prefix, "/v2");
    EXPECT_EQ(h.routed.rest(), "//x/y");

    h = get("/v20/x");
    EXPECT_EQ(t.resolve(h).target, &root);
    EXPECT_EQ(h.routed.prefix, "");
    EXPECT_EQ(h.routed.rest(), "/v20/x");
}

TEST(mount_table, the_route_carries_the_handlers_duties) {
    probe root({.watch_disconnect = true, .websocket = true});
    probe wsgi({.buffer_body = true});
    mount_table t(&root, "x");
    t.add("/legacy", wsgi);
    auto h = get("/legacy/x");
    route r = t.resolve(h);
    EXPECT_TRUE(r.duties.buffer_body);
    EXPECT_FALSE(r.duties.watch_disconnect);
    h = get("/new");
    r = t.resolve(h);
    EXPECT_TRUE(r.duties.watch_disconnect);
    EXPECT_TRUE(r.duties.websocket);
    EXPECT_FALSE(r.duties.buffer_body);
}

// Issue 10 items 3 and 15: a path no mount may see (an encoded NUL, a ".."
// segment however written) goes to none of them, root included.
TEST(mount_table, a_path_that_must_be_refused_reaches_no_mount) {
    probe root, files;
    mount_table t(&root, "x");
    t.add("/files", files);
    for (const char* target : {"/files/secret.txt%00.png", "/files/../etc/passwd", "/files/%2e%2E/x", "/x%2F..%2Fy"}) {
        auto h = get(target);
        route r = t.resolve(h);
        EXPECT_NE(r.target, &root) << target;
        EXPECT_NE(r.target, &files) << target;
        EXPECT_EQ(h.routed.prefix, "") << target;
    }
}

TEST(mount_table, without_a_root_app_other_paths_reach_no_mount) {
    probe api;
    mount_table t(nullptr, "x");
    t.add("/api", api);
    auto h = get("/other");
    EXPECT_NE(t.resolve(h).target, &api);
    h = get("/api");
    EXPECT_EQ(t.resolve(h).target, &api);
    EXPECT_EQ(h.routed.rest(), "");
}

} // namespace
} // namespace trestle::router
