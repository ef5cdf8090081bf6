#include "bridge/observability/dashboard_endpoint.hpp"

#include "bridge/observability/access_format.hpp"

#include "bridge/net/app_port.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/response_writer.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/observability/metrics.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>

namespace trestle::dashboard {

namespace asio = boost::asio;

namespace {

// The page and the JSON answers: no caching, no sniffing, no referrer
// (the token may be in the page's URL), nothing loaded from elsewhere.
constexpr std::string_view page_fields =
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n";
constexpr std::string_view json_fields = "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";

// How often an event goes out, and how often a stream looks for its client
// having left or a graceful stop having begun in between.
constexpr auto event_period = std::chrono::seconds(1);
constexpr auto check_period = std::chrono::milliseconds(100);

double unix_now() {
    using namespace std::chrono;
    return duration<double>(system_clock::now().time_since_epoch()).count();
}

} // namespace

std::string request_token(const net::request_head& h) {
    if (const std::string* a = h.find("authorization")) {
        std::string_view v = *a;
        if (v.size() > 7 && net::ascii_iequals(v.substr(0, 7), "bearer ")) {
            v.remove_prefix(7);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
            return std::string(v);
        }
    }
    std::string_view q = h.query();
    while (!q.empty()) {
        std::size_t amp = q.find('&');
        std::string_view pair = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        if (pair.starts_with("token=")) {
            std::string out;
            if (!net::percent_decode(pair.substr(6), out)) return {};
            return out;
        }
    }
    return {};
}

bool token_equals(std::string_view given, std::string_view expected) {
    // Every byte of `given` is compared (against the expected byte, or
    // against itself past its end), so the time says nothing of where a
    // guess first differs, nor of the expected length.
    unsigned char diff = given.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < given.size(); ++i) {
        unsigned char e = i < expected.size() ? static_cast<unsigned char>(expected[i])
                                              : static_cast<unsigned char>(given[i]);
        diff |= static_cast<unsigned char>(given[i]) ^ e;
    }
    return diff == 0 && !expected.empty();
}

void append_json_string(std::string& out, std::string_view s) {
    // The access log's escaper: one JSON string writer in the server.
    out += '"';
    append_json_escaped(out, s);
    out += '"';
}

std::string data_json(double unix_seconds, std::string_view metrics_text, std::string_view shadow) {
    std::string out;
    out.reserve(metrics_text.size() + metrics_text.size() / 8 + shadow.size() + 64);
    char t[32];
    std::snprintf(t, sizeof t, "%.3f", unix_seconds);
    out += "{\"t\":";
    out += t;
    out += ",\"metrics\":";
    append_json_string(out, metrics_text);
    out += ",\"shadow\":";
    out += shadow.empty() ? no_shadow : shadow;
    out += '}';
    return out;
}

std::string sse_event(std::string_view data) {
    std::string out;
    out.reserve(data.size() + 16);
    // A line break inside the data would end the field: each line becomes
    // a data: field of its own, which the client joins back with "\n".
    while (true) {
        std::size_t nl = data.find_first_of("\r\n");
        out += "data: ";
        out.append(data.substr(0, nl));
        out += '\n';
        if (nl == std::string_view::npos) break;
        data.remove_prefix(nl + (data[nl] == '\r' && nl + 1 < data.size() && data[nl + 1] == '\n' ? 2 : 1));
    }
    out += '\n';
    return out;
}

bool endpoint::may_read(const net::app_port& ex) const {
    if (s_.allow.trusts(ex.endpoint())) return true;
    return !s_.token.empty() && token_equals(request_token(ex.head()), s_.token);
}

std::string endpoint::snapshot() {
    std::string shadow = shadow_ ? shadow_() : std::string(no_shadow);
    return data_json(unix_now(), r_.render(), shadow);
}

bool endpoint::submit(std::shared_ptr<net::app_port> ex) {
    const net::request_head& h = ex->head();
    std::string_view rest = h.routed.rest();
    unsigned status = 200;
    if (!may_read(*ex)) status = 403;
    else if (h.method != "GET" && h.method != "HEAD") status = 405;
    else if (rest != "" && rest != "/" && rest != "/events" && rest != "/data" && rest != "/shadow") status = 404;
    if (status == 200 && rest == "/events" && !h.head_method) {
        asio::co_spawn(ex->io_executor(), stream(ex), [](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                log::error(std::string("dashboard events failed: ") + x.what());
            }
        });
        return true;
    }
    std::string r;
    if (status != 200) {
        r = net::simple_response(status, ctx_.server_header, !h.keep_alive,
                                 status == 405 ? "Allow: GET, HEAD\r\n" : "", h.head_method);
    } else {
        std::string body, type;
        std::string_view extra = json_fields;
        if (rest == "/events") {   // HEAD
            type = "text/event-stream";
        } else if (rest == "/data") {
            body = snapshot();
            type = "application/json";
        } else if (rest == "/shadow") {
            body = shadow_ ? shadow_() : std::string(no_shadow);
            type = "application/json";
        } else {
            body = page();
            type = "text/html; charset=utf-8";
            extra = page_fields;
        }
        r = net::text_response(200, type, body, ctx_.server_header, !h.keep_alive, extra, h.head_method);
        if (!h.head_method) ex->add_body_bytes(body.size());
    }
    ex->set_status(status);
    ex->finish(h.keep_alive, r);
    return true;
}

asio::awaitable<void> endpoint::stream(std::shared_ptr<net::app_port> ex) {
    net::response_writer w(*ex, ctx_);
    w.set_head(200, "200 OK",
               "Content-Type: text/event-stream\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\n",
               std::nullopt);
    w.emit_head(std::nullopt);
    // Browsers wait 3 s by default before they reconnect. The first event
    // goes with the head.
    w.append_body("retry: 1000\n" + sse_event(snapshot()));
    asio::steady_timer timer(ex->io_executor());
    auto due = std::chrono::steady_clock::now();
    while (true) {
        if (ex->client_gone()) {
            w.finish(true);
            co_return;
        }
        if (ctx_.unready.load(std::memory_order_relaxed)) {
            // A graceful stop: end the stream and the connection, so this
            // client does not hold the drain; the page reconnects to
            // whichever server answers next.
            w.close_after();
            w.end_body();
            w.finish(false);
            co_return;
        }
        auto now = std::chrono::steady_clock::now();
        if (now >= due) {
            // At most one event waits for a slow client: while the last one
            // is still there, this tick's is skipped.
            if (w.out().empty()) w.append_body(sse_event(snapshot()));
            if (ex->try_write(w.out()) == net::app_port::write_result::gone) {
                w.finish(true);
                co_return;
            }
            due = now + event_period;
        }
        timer.expires_after(std::min<std::chrono::steady_clock::duration>(check_period, due - now));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

} // namespace trestle::dashboard
