#include "bridge/router/route_name.hpp"

#include <gtest/gtest.h>

namespace trestle::router {
namespace {

TEST(route_name, glob_star_stays_in_one_segment) {
    EXPECT_TRUE(glob_match("/orders/*", "/orders/7"));
    EXPECT_FALSE(glob_match("/orders/*", "/orders/7/items"));
    EXPECT_TRUE(glob_match("/orders/**", "/orders/7/items"));
    EXPECT_TRUE(glob_match("/orders/*/items", "/orders/7/items"));
    EXPECT_FALSE(glob_match("/orders/*", "/order/7"));
    EXPECT_TRUE(glob_match("/health", "/health"));
    EXPECT_FALSE(glob_match("/health", "/healthz"));
    EXPECT_TRUE(glob_match("*.json", "a.json"));
    EXPECT_FALSE(glob_match("*.json", "/a.json"));
}

TEST(route_name, ids_are_folded_and_patterns_win) {
    std::vector<std::string> none;
    EXPECT_EQ(route_name("GET", "", "/orders/7", none), "GET /orders/:id");
    EXPECT_EQ(route_name("GET", "/api", "/users/550e8400-e29b-41d4-a716-446655440000/avatar", none),
              "GET /api/users/:id/avatar");
    EXPECT_EQ(route_name("GET", "", "/users/ada", none), "GET /users/ada");
    EXPECT_EQ(route_name("GET", "", "/tokens/a1b2c3d4e5f6g7h8i9", none), "GET /tokens/:id");
    EXPECT_EQ(route_name("HEAD", "/v2", "", none), "HEAD /v2/");
    EXPECT_EQ(route_name("GET", "", "/", none), "GET /");
    EXPECT_EQ(route_name("GET", "", "/a/", none), "GET /a/");
    std::vector<std::string> pats{"/summary/*", "/health"};
    EXPECT_EQ(route_name("GET", "", "/summary/ada", pats), "GET /summary/*");
    EXPECT_EQ(route_name("GET", "", "/summary/7/x", pats), "GET /summary/:id/x");
}

} // namespace
} // namespace trestle::router
