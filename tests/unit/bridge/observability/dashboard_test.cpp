// The dashboard's pieces without I/O: the token a request brings and its
// comparison, the JSON string escaping of the metrics text (any bytes, one
// line), the event framing, and the embedded page.
#include "bridge/observability/dashboard_endpoint.hpp"

#include "bridge/net/request.hpp"

#include <gtest/gtest.h>

#include <string>

namespace trestle::dashboard {
namespace {

net::request_head head(std::string target, std::string authorization = {}) {
    net::request_head h;
    h.method = "GET";
    h.target = std::move(target);
    if (!authorization.empty()) h.headers.push_back({"Authorization", std::move(authorization), 0});
    return h;
}

TEST(dashboard, the_token_comes_from_a_bearer_header_or_the_query) {
    EXPECT_EQ(request_token(head("/d", "Bearer s3cret")), "s3cret");
    EXPECT_EQ(request_token(head("/d", "bearer  s3cret ")), "s3cret");
    EXPECT_EQ(request_token(head("/d", "Basic czNjcmV0")), "");
    EXPECT_EQ(request_token(head("/d/events?token=s3cret")), "s3cret");
    EXPECT_EQ(request_token(head("/d/events?a=1&token=a%2Bb&token=other")), "a+b");
    EXPECT_EQ(request_token(head("/d/events?xtoken=s3cret")), "");
    EXPECT_EQ(request_token(head("/d/events?token=%00")), "");
    EXPECT_EQ(request_token(head("/d")), "");
    // The header wins over the query.
    EXPECT_EQ(request_token(head("/d?token=q", "Bearer h")), "h");
}

TEST(dashboard, tokens_match_only_when_equal_and_an_empty_one_never_does) {
    EXPECT_TRUE(token_equals("s3cret", "s3cret"));
    EXPECT_FALSE(token_equals("s3cre", "s3cret"));
    EXPECT_FALSE(token_equals("s3cretx", "s3cret"));
    EXPECT_FALSE(token_equals("S3cret", "s3cret"));
    EXPECT_FALSE(token_equals("", "s3cret"));
    EXPECT_FALSE(token_equals("", ""));
    EXPECT_FALSE(token_equals(std::string("s3cret\0", 7), "s3cret"));
}

TEST(dashboard, json_strings_escape_quotes_backslashes_and_every_control_byte) {
    std::string out;
    append_json_string(out, std::string("a\"b\\c\nd\re\tf\x01g\x1f\x7f\xc3\xa9", 17));
    EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001f\\u007f\xc3\xa9\"");
    out.clear();
    // A byte that is not UTF-8 (a label from a client's path) stays valid JSON.
    append_json_string(out, "x\xffy");
    EXPECT_EQ(out, "\"x\\u00ffy\"");
    out.clear();
    append_json_string(out, std::string("\0", 1));
    EXPECT_EQ(out, "\"\\u0000\"");
    out.clear();
    append_json_string(out, "");
    EXPECT_EQ(out, "\"\"");
}

TEST(dashboard, the_data_is_one_line_of_json) {
    std::string j = data_json(1700000000.25, "# HELP x y\nx{mount=\"/a\\\"b\"} 1\n", no_shadow);
    EXPECT_EQ(j, "{\"t\":1700000000.250,\"metrics\":\"# HELP x y\\nx{mount=\\\"/a\\\\\\\"b\\\"} 1\\n\","
                 "\"shadow\":{\"mounts\":[],\"mismatches\":[]}}");
    EXPECT_EQ(j.find('\n'), std::string::npos);
    EXPECT_NE(data_json(1, "", "").find("\"shadow\":{\"mounts\":[]"), std::string::npos);
}

TEST(dashboard, an_event_puts_each_line_of_its_data_in_a_field_of_its_own) {
    EXPECT_EQ(sse_event("{}"), "data: {}\n\n");
    EXPECT_EQ(sse_event("{\n}"), "data: {\ndata: }\n\n");
    EXPECT_EQ(sse_event("a\r\nb\rc"), "data: a\ndata: b\ndata: c\n\n");
    EXPECT_EQ(sse_event(""), "data: \n\n");
}

TEST(dashboard, the_page_is_embedded_whole) {
    std::string_view p = page();
    ASSERT_GT(p.size(), 1000u);
    EXPECT_TRUE(p.starts_with("<!doctype html>"));
    EXPECT_NE(p.find("</html>"), std::string_view::npos);
    // Self-contained: nothing fetched from another origin.
    EXPECT_EQ(p.find("src=\"http"), std::string_view::npos);
    EXPECT_EQ(p.find("href=\"http"), std::string_view::npos);
}

} // namespace
} // namespace trestle::dashboard
