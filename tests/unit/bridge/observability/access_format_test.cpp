// The access log's formats: gunicorn's atoms compiled once, the named
// formats, the JSON lines and both escapings. The clock is never read: each
// record carries its own time.
#include "bridge/observability/access_format.hpp"

#include "bridge/net/http_date.hpp"

#include <gtest/gtest.h>

#include <cstdio>

namespace trestle {
namespace {

using namespace std::chrono_literals;

// 784111777 is 06/Nov/1994:08:49:37 UTC.
constexpr std::chrono::sys_seconds stamp{std::chrono::seconds(784111777)};

struct request {
    net::request_head head;
    net::endpoint_info ep;
    access_record rec;

    request() {
        head.method = "GET";
        head.target = "/p?q=1";
        head.headers = {{"Host", "example.org"}, {"User-Agent", "curl/8"}, {"Referer", "http://r/"},
                        {"X-Forwarded-For", "1.2.3.4"}};
        ep.remote_addr = "10.0.0.1";
        ep.remote_port = "5555";
        ep.server_name = "127.0.0.1";
        ep.server_port = "8000";
        rec.head = &head;
        rec.endpoint = &ep;
        rec.status = 200;
        rec.bytes = 13;
        rec.duration = 1234567us;
        rec.now = stamp + 45ms;
        rec.pid = 4242;
    }
    request(const request&) = delete;

    // The line `spec` renders, without its '\n'.
    std::string line(std::string_view spec) const {
        std::string why;
        auto f = access_format::compile(spec, why);
        EXPECT_TRUE(f) << spec << ": " << why;
        if (!f) return "<no format>";
        std::string out;
        f->render(rec, out);
        EXPECT_TRUE(out.ends_with('\n')) << out;
        out.pop_back();
        return out;
    }
};

std::string compile_error(std::string_view spec) {
    std::string why;
    auto f = access_format::compile(spec, why);
    EXPECT_FALSE(f) << spec;
    EXPECT_EQ(why.find('\n'), std::string::npos) << why;   // one line
    return why;
}

TEST(access_format, every_letter_atom) {
    request r;
    const std::pair<const char*, const char*> atoms[] = {
        {"h", "10.0.0.1"}, {"l", "-"}, {"u", "-"}, {"t", "[06/Nov/1994:08:49:37 +0000]"},
        {"r", "GET /p?q=1 HTTP/1.1"}, {"m", "GET"}, {"U", "/p"}, {"q", "q=1"}, {"H", "HTTP/1.1"},
        {"s", "200"}, {"B", "13"}, {"b", "13"}, {"f", "http://r/"}, {"a", "curl/8"},
        {"T", "1"}, {"M", "1234"}, {"D", "1234567"}, {"L", "1.234567"}, {"p", "<4242>"},
    };
    for (auto [name, want] : atoms) EXPECT_EQ(r.line(std::string("%(") + name + ")s"), want) << name;
}

TEST(access_format, numbers_take_d_as_well) {
    request r;
    EXPECT_EQ(r.line("%(s)d %(B)d %(T)d %(M)d %(D)d"), "200 13 1 1234 1234567");
    EXPECT_NE(compile_error("%(h)d").find("not a number"), std::string::npos);
}

TEST(access_format, what_is_missing) {
    request r;
    r.rec.status = 0;   // the client left before a response
    r.rec.bytes = 0;
    r.ep.remote_addr.clear();   // a unix socket
    r.ep.remote_port.clear();
    r.head.target = "/p";
    r.head.headers.clear();
    EXPECT_EQ(r.line("%(h)s|%(s)s|%(b)s|%(B)s|%(f)s|%(a)s|%(q)s|%({x-none}i)s|%({x-none}o)s|%({remote_port}e)s"),
              "-|-|-|0|-|-||-|-|-");
}

TEST(access_format, http_1_0) {
    request r;
    r.head.version = 10;
    EXPECT_EQ(r.line("%(r)s %(H)s"), "GET /p?q=1 HTTP/1.0 HTTP/1.0");
}

TEST(access_format, durations_truncate_like_gunicorn) {
    request r;
    r.rec.duration = 2999999999ns;
    EXPECT_EQ(r.line("%(T)s %(M)s %(D)s"), "2 2999 2999999");
    r.rec.duration = -5ns;   // a clock that went back: never a negative or huge number
    EXPECT_EQ(r.line("%(T)s %(M)s %(D)s"), "0 0 0");
}

TEST(access_format, literal_text_and_percent) {
    request r;
    EXPECT_EQ(r.line("100%% of %(m)s, then 50%%"), "100% of GET, then 50%");
    EXPECT_EQ(r.line("%%%(s)s%%"), "%200%");
    EXPECT_EQ(r.line("\t%(s)s\t"), "\t200\t");
    std::string why;
    auto f = access_format::compile("a %(h)s b%%c %(s)s", why);
    ASSERT_TRUE(f);
    using atom = access_format::atom;
    ASSERT_EQ(f->pieces().size(), 4u);
    EXPECT_EQ(f->pieces()[0].what, atom::literal);
    EXPECT_EQ(f->pieces()[0].text, "a ");
    EXPECT_EQ(f->pieces()[1].what, atom::remote_addr);
    EXPECT_EQ(f->pieces()[2].text, " b%c ");
    EXPECT_EQ(f->pieces()[3].what, atom::status);
}

TEST(access_format, request_headers_by_any_case) {
    request r;
    EXPECT_EQ(r.line("%({x-forwarded-for}i)s"), "1.2.3.4");
    EXPECT_EQ(r.line("%({X-Forwarded-For}i)s"), "1.2.3.4");
    EXPECT_EQ(r.line("%({X-FORWARDED-FOR}i)s"), "1.2.3.4");
    EXPECT_EQ(r.line("%({HOST}i)s %({USER-agent}i)s"), "example.org curl/8");
}

TEST(access_format, response_headers_need_the_response_head) {
    request r;
    std::string head = "Content-Type: text/plain\r\nX-Cache:  HIT \r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n";
    r.rec.response_head = head;
    EXPECT_EQ(r.line("%({content-type}o)s %({X-Cache}o)s %({set-cookie}o)s %({content-length}o)s"),
              "text/plain HIT a=1 -");
    std::string why;
    EXPECT_TRUE(access_format::compile("%({Content-Type}o)s", why)->needs_response_head());
    EXPECT_FALSE(access_format::compile("%({Content-Type}i)s", why)->needs_response_head());
    EXPECT_FALSE(access_format::compile("combined", why)->needs_response_head());
    EXPECT_TRUE(access_format::compile("json", why)->needs_response_head());
}

TEST(access_format, environ_names_that_come_from_the_request) {
    request r;
    r.ep.scheme = "https";
    r.head.headers.push_back({"Content-Type", "text/csv"});
    EXPECT_EQ(r.line("%({REMOTE_ADDR}e)s %({remote_port}e)s %({SERVER_NAME}e)s %({SERVER_PORT}e)s"),
              "10.0.0.1 5555 127.0.0.1 8000");
    EXPECT_EQ(r.line("%({REQUEST_METHOD}e)s %({QUERY_STRING}e)s %({SERVER_PROTOCOL}e)s %({RAW_URI}e)s %({REQUEST_URI}e)s"),
              "GET q=1 HTTP/1.1 /p?q=1 /p?q=1");
    EXPECT_EQ(r.line("%({wsgi.url_scheme}e)s %({HTTP_X_FORWARDED_FOR}e)s %({CONTENT_TYPE}e)s %({content_length}e)s"),
              "https 1.2.3.4 text/csv -");
    // Values the app's environ holds but the request does not: refused, not '-'.
    for (const char* name : {"PATH_INFO", "SCRIPT_NAME", "REMOTE_USER", "wsgi.input", "HOME", "http_"}) {
        std::string why = compile_error(std::string("%({") + name + "}e)s");
        EXPECT_NE(why.find("not a value the access log knows"), std::string::npos) << why;
    }
}

TEST(access_format, basic_auth_user) {
    request r;
    r.head.headers.push_back({"Authorization", "Basic YWxpY2U6c2VjcmV0"});   // alice:secret
    EXPECT_EQ(r.line("%(u)s"), "alice");
    r.head.headers.back().value = "basic   YWxpY2U=";   // alice, no password, padded
    EXPECT_EQ(r.line("%(u)s"), "alice");
    r.head.headers.back().value = "Basic YWxpY2U";      // alice, padding left out
    EXPECT_EQ(r.line("%(u)s"), "alice");
    r.head.headers.back().value = "Basic ImV2ZSIgeDpw";   // "eve" x:p
    EXPECT_EQ(r.line("%(u)s"), "\\x22eve\\x22 x");
    for (const char* bad : {"Basic !!!!", "Basic OnNlY3JldA==" /* :secret */, "Bearer YWxpY2U6c2VjcmV0", "Basic",
                            "Basic Y"}) {
        r.head.headers.back().value = bad;
        EXPECT_EQ(r.line("%(u)s"), "-") << bad;
    }
}

TEST(access_format, values_are_escaped_and_literals_are_not) {
    request r;
    r.head.headers[1].value = "a\"b\\c\nd\x01\x7f\xc3\xa9";
    EXPECT_EQ(r.line("\"%(a)s\" \"x\""), R"("a\x22b\x5cc\x0ad\x01\x7f\xc3\xa9" "x")");
}

TEST(access_format, refused_formats) {
    auto has = [](const std::string& why, const char* words) {
        EXPECT_NE(why.find(words), std::string::npos) << why;
    };
    has(compile_error("%(x)s"), "unknown atom %(x)s (known: h l u t r m U q H s B b f a T M D L p");
    has(compile_error("%(hh)s"), "unknown atom %(hh)s");
    has(compile_error("%({x}z)s"), "unknown atom %({x}z)s");
    has(compile_error("%(h)"), "must be followed by s");
    has(compile_error("%(h)-15s"), "no width, flags");
    has(compile_error("%(h)r"), "must be followed by s");
    has(compile_error("%s"), "'%' must begin %(NAME)s");
    has(compile_error("50%"), "'%' must begin %(NAME)s, or be written %% (at offset 2)");
    has(compile_error("%(h"), "without its ')'");
    has(compile_error("%({}i)s"), "is not a header name");
    has(compile_error("%({a b}i)s"), "is not a header name");
    has(compile_error(""), "empty");
    has(compile_error("%(h)s\n%(s)s"), "control character");
    // Names are exact; text without an atom is a misspelt name, not a format.
    has(compile_error("Combined"), "'Combined' is neither a format name (combined, common, json) nor a format string");
    has(compile_error("jsonl"), "is neither a format name");
    has(compile_error("100%%"), "is neither a format name");
}

TEST(access_format, parentheses_nest_as_in_python) {
    // Python's % takes "a(b)" as the name: an unknown atom, not "a(b" and a stray ")s".
    EXPECT_NE(compile_error("%(a(b))s").find("unknown atom %(a(b))s"), std::string::npos);
}

TEST(access_format, the_date_follows_each_record) {
    request r;
    EXPECT_EQ(r.line("%(t)s"), "[06/Nov/1994:08:49:37 +0000]");
    r.rec.now = stamp + 1s;
    EXPECT_EQ(r.line("%(t)s"), "[06/Nov/1994:08:49:38 +0000]");
    r.rec.now = stamp;
    EXPECT_EQ(r.line("%(t)s"), "[06/Nov/1994:08:49:37 +0000]");
}

// ---- combined and common ----------------------------------------------------

// The line access_log wrote before formats existed, kept verbatim as the
// reference: `combined` must stay byte for byte the same.
void legacy_append_quoted(std::string& line, const std::string* v) {
    line += '"';
    if (!v) {
        line += '-';
    } else {
        for (unsigned char c : *v) {
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
                char esc[8];
                std::snprintf(esc, sizeof esc, "\\x%02x", c);
                line += esc;
            } else {
                line += static_cast<char>(c);
            }
        }
    }
    line += '"';
}

std::string legacy_combined(const access_record& r) {
    auto elapsed = std::chrono::duration<double>(r.duration).count();
    const auto& h = *r.head;
    std::string stamp = net::format_log_date(std::chrono::system_clock::to_time_t(r.now));
    std::string line;
    line += r.endpoint->remote_addr.empty() ? "-" : r.endpoint->remote_addr;
    line += " - - ";
    line += stamp;
    line += ' ';
    std::string request = h.method + " " + h.target + (h.version == 10 ? " HTTP/1.0" : " HTTP/1.1");
    legacy_append_quoted(line, &request);
    line += ' ';
    line += r.status ? std::to_string(r.status) : "-";
    line += ' ';
    line += r.bytes ? std::to_string(r.bytes) : "-";
    line += ' ';
    legacy_append_quoted(line, h.find("referer"));
    line += ' ';
    legacy_append_quoted(line, h.find("user-agent"));
    char dur[32];
    std::snprintf(dur, sizeof dur, " %.6f\n", elapsed);
    line += dur;
    return line;
}

TEST(access_format, combined_is_the_old_line_byte_for_byte) {
    request r;
    EXPECT_EQ(r.line("combined"),
              R"(10.0.0.1 - - [06/Nov/1994:08:49:37 +0000] "GET /p?q=1 HTTP/1.1" 200 13 "http://r/" "curl/8" 1.234567)");
    std::string why;
    auto combined = access_format::compile("combined", why);
    ASSERT_TRUE(combined);
    auto check = [&] {
        std::string out;
        combined->render(r.rec, out);
        EXPECT_EQ(out, legacy_combined(r.rec));
    };
    check();
    r.head.version = 10;
    r.head.method = "POST";
    r.head.target = "/a b\"c\\d\x01\xff?x=%20";
    r.head.headers[1].value = "Mozilla/5.0 \"quoted\" \t tab \xc3\xa9";
    r.head.headers.erase(r.head.headers.begin() + 2);   // no Referer
    check();
    r.rec.status = 0;
    r.rec.bytes = 0;
    r.ep.remote_addr.clear();
    check();
    for (auto d : {0ns, 1ns, 499ns, 500ns, 501ns, 1500ns, 999999500ns, 86400000000001ns}) {
        r.rec.duration = d;
        check();
    }
    r.rec.status = 599;
    r.rec.bytes = 18446744073709551615ull;
    r.rec.now = stamp + 999ms;
    check();
}

TEST(access_format, combined_and_common_are_format_strings) {
    request r;
    EXPECT_EQ(r.line("combined"), r.line(combined_format));
    EXPECT_EQ(r.line("common"), r.line(common_format));
    EXPECT_EQ(r.line("common"), R"(10.0.0.1 - - [06/Nov/1994:08:49:37 +0000] "GET /p?q=1 HTTP/1.1" 200 13)");
}

TEST(access_format, gunicorns_default_format) {
    request r;
    r.head.headers.push_back({"Authorization", "Basic YWxpY2U6c2VjcmV0"});
    EXPECT_EQ(r.line(R"(%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s")"),
              R"(10.0.0.1 - alice [06/Nov/1994:08:49:37 +0000] "GET /p?q=1 HTTP/1.1" 200 13 "http://r/" "curl/8")");
}

// ---- json -------------------------------------------------------------------

TEST(access_format, json_line) {
    request r;
    EXPECT_EQ(r.line("json"),
              R"({"time":"1994-11-06T08:49:37.045+00:00","remote_addr":"10.0.0.1","method":"GET","path":"/p",)"
              R"("query":"q=1","protocol":"HTTP/1.1","status":200,"bytes":13,"duration_ms":1234.567,)"
              R"("referer":"http://r/","user_agent":"curl/8","request_id":null,"pid":4242})");
}

TEST(access_format, json_nulls_for_what_is_missing) {
    request r;
    r.rec.status = 0;
    r.rec.bytes = 0;
    r.rec.duration = 0ns;
    r.rec.now = stamp;
    r.ep.remote_addr.clear();
    r.head.version = 10;
    r.head.target = "/";
    r.head.headers.clear();
    EXPECT_EQ(r.line("json"),
              R"({"time":"1994-11-06T08:49:37.000+00:00","remote_addr":null,"method":"GET","path":"/",)"
              R"("query":"","protocol":"HTTP/1.0","status":null,"bytes":0,"duration_ms":0.000,)"
              R"("referer":null,"user_agent":null,"request_id":null,"pid":4242})");
}

TEST(access_format, json_request_id_from_the_request_else_the_response) {
    request r;
    std::string head = "Content-Type: text/plain\r\nX-Request-Id: from-app\r\n";
    r.rec.response_head = head;
    EXPECT_NE(r.line("json").find(R"("request_id":"from-app")"), std::string::npos);
    r.head.headers.push_back({"x-request-id", "from-proxy\""});
    EXPECT_NE(r.line("json").find(R"("request_id":"from-proxy\"")"), std::string::npos);
}

TEST(access_format, json_escapes_the_request) {
    request r;
    r.head.target = "/a\"b\\c?x=\x01";
    r.head.headers[1].value = "caf\xe9 \xe2\x82\xac";   // Latin-1 é, then a valid €
    std::string line = r.line("json");
    EXPECT_NE(line.find(R"("path":"/a\"b\\c","query":"x=\u0001")"), std::string::npos) << line;
    EXPECT_NE(line.find("\"user_agent\":\"caf\\u00e9 \xe2\x82\xac\""), std::string::npos) << line;
}

std::string json_escaped(std::string_view v) {
    std::string out;
    append_json_escaped(out, v);
    return out;
}

TEST(access_format, json_escaping) {
    EXPECT_EQ(json_escaped("plain text /?=&"), "plain text /?=&");
    EXPECT_EQ(json_escaped("q\"b\\s/"), R"(q\"b\\s/)");
    EXPECT_EQ(json_escaped("\n\r\t\b\f"), R"(\n\r\t\b\f)");
    EXPECT_EQ(json_escaped(std::string_view("\x00\x01\x1f\x7f", 4)), R"(\u0000\u0001\u001f\u007f)");
    // Well-formed UTF-8 stays as it is: 2, 3 and 4 bytes, and the edges.
    for (const char* ok : {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc2\x80", "\xed\x9f\xbf", "\xee\x80\x80",
                           "\xf4\x8f\xbf\xbf", "\xe0\xa0\x80", "\xf0\x90\x80\x80"})
        EXPECT_EQ(json_escaped(ok), ok);
    // Anything else, byte by byte, as its Latin-1 reading.
    EXPECT_EQ(json_escaped("\xff"), R"(\u00ff)");
    EXPECT_EQ(json_escaped("caf\xe9!"), R"(caf\u00e9!)");
    EXPECT_EQ(json_escaped("\xe2\x82"), R"(\u00e2\u0082)");            // cut short
    EXPECT_EQ(json_escaped("\xe2\x82z"), R"(\u00e2\u0082z)");
    EXPECT_EQ(json_escaped("\xc0\xaf"), R"(\u00c0\u00af)");            // overlong '/'
    EXPECT_EQ(json_escaped("\xe0\x80\xaf"), R"(\u00e0\u0080\u00af)");  // overlong
    EXPECT_EQ(json_escaped("\xed\xa0\x80"), R"(\u00ed\u00a0\u0080)");  // a surrogate
    EXPECT_EQ(json_escaped("\xf4\x90\x80\x80"), R"(\u00f4\u0090\u0080\u0080)");   // past U+10FFFF
    EXPECT_EQ(json_escaped("\x80\xc3\xa9"), "\\u0080\xc3\xa9");       // a stray continuation, then é
}

std::string log_escaped(std::string_view v) {
    std::string out;
    append_log_escaped(out, v);
    return out;
}

TEST(access_format, log_escaping) {
    EXPECT_EQ(log_escaped("Mozilla/5.0 (X11)"), "Mozilla/5.0 (X11)");
    EXPECT_EQ(log_escaped("\"\\\n\x1f\x7f\x80\xff"), R"(\x22\x5c\x0a\x1f\x7f\x80\xff)");
    EXPECT_EQ(log_escaped(""), "");
}

TEST(access_format, find_field) {
    std::string_view head = "Content-Type: a\r\nX-Two:b \r\nx-two: c\r\nEmpty:\r\n";
    EXPECT_EQ(find_field(head, "content-type"), "a");
    EXPECT_EQ(find_field(head, "x-two"), "b");
    EXPECT_EQ(find_field(head, "empty"), "");
    EXPECT_EQ(find_field(head, "content"), std::nullopt);
    EXPECT_EQ(find_field("", "x"), std::nullopt);
}

} // namespace
} // namespace trestle
