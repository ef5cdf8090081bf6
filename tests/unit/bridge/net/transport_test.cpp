// The transport over TLS, against a real OpenSSL client on the other end of
// a socket pair: the handshake and ALPN, reads and writes both ways, a write
// the socket cannot take at once finishing later with the same bytes, the
// client's close_notify as end of stream, cancellation, a plain HTTP client
// answered 400; and the context's one-line errors.
#include "bridge/net/tls_context.hpp"
#include "bridge/net/transport.hpp"

#include "tests/unit/support/test_tls.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <optional>
#include <sys/socket.h>
#include <thread>

namespace trestle::net {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct transport_test : ::testing::Test {
    testing::test_pki pki;
    asio::io_context io;
    int client_fd = -1;
    std::optional<transport> t;
    std::thread client;

    void start(bool h2 = false) {
        std::signal(SIGPIPE, SIG_IGN);
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        client_fd = sv[1];
        t.emplace(generic_socket(io, asio::generic::stream_protocol(AF_UNIX, 0), sv[0]));
        tls_options o;
        o.certfile = pki.cert;
        o.keyfile = pki.key;
        o.h2 = h2;
        std::string why;
        auto ctx = tls_context::load(o, why);
        ASSERT_TRUE(ctx) << why;
        t->start_tls(ctx);
    }
    void TearDown() override {
        if (client.joinable()) client.join();
        if (client_fd >= 0) ::close(client_fd);
    }
    // Runs the io_context until `done` or 5 s pass.
    template <class Pred>
    void run_until(Pred done) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            io.run_for(std::chrono::milliseconds(10));
            io.restart();
        }
        ASSERT_TRUE(done());
    }
    bool handshake() {
        std::optional<bool> ok;
        asio::co_spawn(io, [&]() -> asio::awaitable<void> { ok = co_await t->handshake(); }, asio::detached);
        run_until([&] { return ok.has_value(); });
        return ok.value_or(false);
    }
    struct read_result {
        error_code ec;
        std::string data;
        bool done = false;
    };
    void read_some(read_result& r, std::size_t n = 65536) {
        asio::co_spawn(io, [&, n]() -> asio::awaitable<void> {
            std::string buf(n, '\0');
            auto [ec, got] = co_await t->async_read_some(asio::buffer(buf), use_tuple);
            r.ec = ec;
            r.data = buf.substr(0, got);
            r.done = true;
        }, asio::detached);
    }
};

TEST_F(transport_test, handshake_then_both_directions) {
    start();
    std::string got;
    client = std::thread([&] {
        testing::tls_client c(client_fd, "http/1.1");
        if (!c.handshake()) return;
        c.write("hello");
        got = c.read(5);
    });
    ASSERT_TRUE(handshake());
    EXPECT_EQ(t->tls()->alpn(), "http/1.1");
    read_result r;
    read_some(r);
    run_until([&] { return r.done; });
    EXPECT_FALSE(r.ec);
    EXPECT_EQ(r.data, "hello");
    std::string out = "world";
    EXPECT_TRUE(t->write_now(out));
    EXPECT_TRUE(out.empty());
    client.join();
    EXPECT_EQ(got, "world");
    auto info = t->tls()->info();
    EXPECT_EQ(info->version, "TLSv1.3");
    EXPECT_EQ(info->version_number, 0x0304);
    EXPECT_GT(info->cipher_id, 0);
    EXPECT_NE(info->server_cert.find("BEGIN CERTIFICATE"), std::string::npos);
    EXPECT_TRUE(info->client_chain.empty());
}

TEST_F(transport_test, alpn_offers_h2_only_when_enabled) {
    for (bool h2 : {false, true}) {
        if (client.joinable()) client.join();
        if (client_fd >= 0) ::close(client_fd);
        t.reset();
        start(h2);
        std::string seen;
        client = std::thread([&] {
            testing::tls_client c(client_fd, "h2,http/1.1");
            if (c.handshake()) seen = c.alpn();
        });
        ASSERT_TRUE(handshake());
        client.join();
        EXPECT_EQ(seen, h2 ? "h2" : "http/1.1");
        EXPECT_EQ(t->tls()->alpn(), seen);
    }
}

TEST_F(transport_test, a_write_the_socket_cannot_take_finishes_later_intact) {
    start();
    // 4 MiB: far more than a socket pair buffers while the client waits.
    std::string big(4 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4096);
    std::string received;
    std::atomic<bool> go{false};
    client = std::thread([&] {
        testing::tls_client c(client_fd);
        if (!c.handshake()) return;
        while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        received = c.read(big.size());
    });
    ASSERT_TRUE(handshake());
    std::string out = big;
    EXPECT_FALSE(t->write_now(out));   // the socket filled up
    EXPECT_FALSE(out.empty());
    std::size_t left_at_first = out.size();
    EXPECT_LT(left_at_first, big.size());
    go = true;
    bool finished = false;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        while (!out.empty()) {
            auto [ec, n] = co_await t->async_write_some(asio::buffer(out), use_tuple);
            if (ec) break;
            out.erase(0, n);
        }
        finished = true;
    }, asio::detached);
    run_until([&] { return finished; });
    client.join();
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(received.size(), big.size());
    EXPECT_TRUE(received == big);
}

TEST_F(transport_test, close_notify_is_end_of_stream) {
    start();
    client = std::thread([&] {
        testing::tls_client c(client_fd);
        if (!c.handshake()) return;
        c.write("last");
        c.close_notify();
    });
    ASSERT_TRUE(handshake());
    read_result r1, r2;
    read_some(r1);
    run_until([&] { return r1.done; });
    EXPECT_EQ(r1.data, "last");
    read_some(r2);
    run_until([&] { return r2.done; });
    EXPECT_EQ(r2.ec, asio::error::eof);
}

TEST_F(transport_test, a_pending_read_is_cancelled) {
    start();
    std::atomic<bool> release{false};
    client = std::thread([&] {
        testing::tls_client c(client_fd);
        if (!c.handshake()) return;
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    ASSERT_TRUE(handshake());
    read_result r;
    read_some(r);
    io.run_for(std::chrono::milliseconds(20));
    io.restart();
    EXPECT_FALSE(r.done);
    error_code ec;
    t->cancel(ec);
    run_until([&] { return r.done; });
    EXPECT_EQ(r.ec, asio::error::operation_aborted);
    release = true;
    client.join();   // before `release` goes out of scope
}

TEST_F(transport_test, plain_http_gets_a_400_in_plain_text) {
    start();
    std::string answer;
    client = std::thread([&] {
        std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        (void)::send(client_fd, req.data(), req.size(), MSG_NOSIGNAL);
        char buf[512];
        ssize_t n = ::recv(client_fd, buf, sizeof buf, 0);
        if (n > 0) answer.assign(buf, static_cast<std::size_t>(n));
    });
    EXPECT_FALSE(handshake());
    client.join();
    EXPECT_TRUE(t->tls()->plain_http());
    EXPECT_EQ(answer.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << answer;
}

TEST_F(transport_test, plain_transport_is_the_socket) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client_fd = sv[1];
    t.emplace(generic_socket(io, asio::generic::stream_protocol(AF_UNIX, 0), sv[0]));
    EXPECT_FALSE(t->is_tls());
    std::string out = "abc";
    EXPECT_TRUE(t->write_now(out));
    char buf[8];
    EXPECT_EQ(::recv(client_fd, buf, sizeof buf, 0), 3);
    EXPECT_FALSE(t->peer_gone());
    ::shutdown(client_fd, SHUT_WR);
    EXPECT_TRUE(t->peer_gone());
}

TEST(tls_context_test, errors_are_one_line_and_name_the_flag) {
    testing::test_pki pki;
    std::string why;
    tls_options o;
    o.certfile = pki.dir + "/missing.pem";
    EXPECT_FALSE(tls_context::load(o, why));
    EXPECT_EQ(why, "--certfile " + o.certfile + ": No such file or directory");
    o.certfile = pki.cert;
    o.keyfile = pki.other_key;
    EXPECT_FALSE(tls_context::load(o, why));
    EXPECT_EQ(why, "--keyfile " + pki.other_key + " does not match --certfile " + pki.cert);
    o.keyfile = pki.key;
    o.ciphers = "NOT-A-CIPHER";
    EXPECT_FALSE(tls_context::load(o, why));
    EXPECT_NE(why.find("--ciphers"), std::string::npos);
    o.ciphers.clear();
    o.ca_certs = pki.dir + "/nope.pem";
    EXPECT_FALSE(tls_context::load(o, why));
    EXPECT_EQ(why, "--ca-certs " + o.ca_certs + ": No such file or directory");
    o.ca_certs.clear();
    EXPECT_TRUE(tls_context::load(o, why));
    EXPECT_EQ(why.find('\n'), std::string::npos);
}

TEST(tls_context_test, provider_keeps_the_old_context_when_a_reload_fails) {
    testing::test_pki pki;
    tls_options o;
    o.certfile = pki.cert;
    o.keyfile = pki.key;
    std::string why;
    auto first = tls_context::load(o, why);
    ASSERT_TRUE(first);
    tls_provider p(o, first);
    EXPECT_EQ(p.current(), first);
    ASSERT_TRUE(p.reload(why));
    auto second = p.current();
    EXPECT_NE(second, first);
    ::unlink(pki.key.c_str());
    EXPECT_FALSE(p.reload(why));
    EXPECT_NE(why.find("--keyfile"), std::string::npos);
    EXPECT_EQ(p.current(), second);
}

} // namespace
} // namespace trestle::net
