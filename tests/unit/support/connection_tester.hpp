#pragma once
// A connection tester: a real net::session over one end of a socketpair,
// with a real server_context, session_registry (its 250 ms watchdog
// included) and mount table, on an io thread of its own, and fake apps
// behind the mounts. The test speaks raw bytes on the other end of the pair
// and reads raw response bytes back; every wait is bounded.
//
//   connection_tester t;
//   t.ctx.limits.keepalive_timeout = 300ms;   // before open()
//   test_client c = t.open();
//   c.send("GET /held/a HTTP/1.1\r\nHost: x\r\n\r\n");
//   ASSERT_TRUE(t.held.wait_requests(1));
//   t.held.answer(0);                          // from the app thread
//   auto r = c.read_response();                // r->status, r->body == "/held/a"
//
// The mounts: "/" answers at once on the io thread (t.now), "/thread" from
// its app thread at once (t.threaded), "/held" from its app thread when the
// test says so (t.held), "/busy" refuses (t.busy: 503), "/watch" like
// "/held" but watching for the client leaving (t.watch). Unless told
// otherwise, an app answers 200 with the request's target as the body.
#include "bridge/core/handler.hpp"
#include "bridge/net/app_port.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/response_writer.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/net/session.hpp"
#include "bridge/router/mount_table.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/string.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace trestle::test_support {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// Long enough for a loaded machine; only a failing test waits this long.
constexpr ms patience{10'000};

// ---- the fake apps ----------------------------------------------------------

// What a fake app answers.
struct reply {
    unsigned status = 200;
    std::optional<std::string> body = std::nullopt;   // default: the request's target
    bool close = false;                // the app asks for the connection to close
    // 0: one buffer with Content-Length. Otherwise the body goes out in this
    // many blocking app_port::write calls (chunked on HTTP/1.1), as a pool
    // thread streams it; only from an app thread.
    std::size_t pieces = 0;
    // Read the whole request body first, blocking as wsgi.input does (only
    // from an app thread); the default answer is then that body. A body that
    // cannot be read is answered with the status the connection gives
    // (413, 408, 400), as the adapters do.
    bool read_body = false;
};

// Frames `r` with the real response_writer and hands it to the exchange.
// Returns whether the client was gone when the app finished.
inline bool respond(net::app_port& ex, const net::server_context& ctx, const reply& r) {
    net::response_writer w(ex, ctx);
    std::string body = r.body ? *r.body : ex.head().target;
    if (r.read_body) {
        std::string got;
        char buf[16 * 1024];
        for (int reads = 0; reads < 1'000'000; ++reads) {
            auto n = ex.read(buf, sizeof buf);
            if (!n) {
                unsigned status = ex.body_error_status();
                w.error_response(status ? status : 400);
                bool gone = ex.client_gone();
                w.finish(gone);
                return gone;
            }
            if (*n == 0) break;
            got.append(buf, *n);
        }
        if (!r.body) body = std::move(got);
    }
    w.set_head(r.status, std::to_string(r.status) + " " + std::string(net::reason_phrase(r.status)),
               "Content-Type: text/plain\r\n", std::nullopt);
    if (r.close) w.close_after();
    if (r.pieces == 0) {
        w.emit_head(body.size());
        w.append_body(body);
    } else {
        w.emit_head(std::nullopt);
        std::size_t step = (body.size() + r.pieces - 1) / r.pieces;
        for (std::size_t at = 0; at < body.size(); at += step) {
            w.append_body(std::string_view(body).substr(at, step));
            if (!ex.write(w.out())) {
                w.abandon();
                break;
            }
        }
    }
    w.end_body();
    bool gone = ex.client_gone();
    w.finish(gone);
    return gone;
}

// One thread that runs jobs in order: a fake app's pool thread.
class app_thread {
public:
    app_thread() : t_([this] { loop(); }) {}
    ~app_thread() { stop(); }
    void run(std::function<void()> job) {
        std::lock_guard l(m_);
        jobs_.push_back(std::move(job));
        cv_.notify_all();
    }
    void stop() {
        {
            std::lock_guard l(m_);
            stopping_ = true;
            cv_.notify_all();
        }
        if (t_.joinable()) t_.join();
    }

private:
    void loop() {
        std::unique_lock l(m_);
        for (;;) {
            cv_.wait(l, [&] { return stopping_ || !jobs_.empty(); });
            if (jobs_.empty()) return;   // stopping, and every job has run
            auto job = std::move(jobs_.front());
            jobs_.pop_front();
            l.unlock();
            job();
            l.lock();
        }
    }
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::thread t_;
};

class fake_app final : public handler {
public:
    enum class mode {
        at_once,     // in submit, on the io thread
        on_thread,   // on the app thread, as soon as it can
        when_told,   // on the app thread, when the test calls answer(i)
        refuse,      // submit returns false: the connection answers 503
    };
    fake_app(mode how, bool watch, const net::server_context& ctx) : how_(how), watch_(watch), ctx_(ctx) {}

    // What at_once and on_thread answer; set before open().
    reply standard;

    duties duties_for(const net::request_head&) const override {
        duties d;
        d.watch_disconnect = watch_;
        return d;
    }

    bool submit(std::shared_ptr<net::app_port> ex) override {
        if (how_ == mode::refuse) {
            refused_.fetch_add(1);
            return false;
        }
        // As an event-loop app does: told (on the io thread, under the
        // exchange's lock) when the client leaves. Only hand off here.
        ex->set_app_waker([this] {
            wakes_.fetch_add(1);
            cv_.notify_all();
        });
        {
            std::lock_guard l(m_);
            seen_.push_back(ex);
        }
        if (how_ == mode::at_once) note_answer(respond(*ex, ctx_, standard));
        if (how_ == mode::on_thread) thread_.run([this, ex] { note_answer(respond(*ex, ctx_, standard)); });
        // Waited for (wait_requests) only at the end of this io turn: by then
        // the connection waits for the app (on its socket when it watches,
        // else on its wakeup timer).
        boost::asio::post(ex->io_executor(), [this] {
            std::lock_guard l(m_);
            ++parked_;
            cv_.notify_all();
        });
        return true;
    }

    // ---- the test's side ----
    // n requests submitted, and the connection has gone on to wait for the app.
    bool wait_requests(std::size_t n, ms limit = patience) {
        return wait_for([&] { return parked_ >= n; }, limit);
    }
    // Requests submitted so far.
    std::size_t requests() {
        std::lock_guard l(m_);
        return seen_.size();
    }
    std::shared_ptr<net::app_port> request(std::size_t i) {
        std::lock_guard l(m_);
        return i < seen_.size() ? seen_[i] : nullptr;
    }
    // when_told: answers request i from the app thread.
    void answer(std::size_t i, reply r = {}) {
        auto ex = request(i);
        ASSERT_TRUE(ex) << "no request " << i;
        thread_.run([this, ex, r] { note_answer(respond(*ex, ctx_, r)); });
    }
    // Answers handed to an exchange, and how many found the client gone.
    bool wait_answers(std::size_t n, ms limit = patience) {
        return wait_for([&] { return answers_ >= n; }, limit);
    }
    std::size_t answers_to_gone_clients() {
        std::lock_guard l(m_);
        return gone_answers_;
    }
    // Whether the app learns, through its waker, that request i's client left.
    bool wait_client_gone(std::size_t i, ms limit = patience) {
        auto ex = request(i);
        if (!ex) return false;
        auto until = steady::now() + limit;
        for (int turns = 0; turns < 100'000; ++turns) {
            // The exchange is asked outside m_ (its waker runs under the
            // exchange's lock); the waker's notify may then be missed, so
            // the wait is sliced.
            if (wakes_.load() > 0 && ex->client_gone()) return true;
            if (steady::now() >= until) return false;
            std::unique_lock l(m_);
            cv_.wait_for(l, 5ms);
        }
        return false;
    }
    unsigned refused() const { return refused_.load(); }
    // Joins the app thread after its last job.
    void stop() { thread_.stop(); }

private:
    template <class Pred>
    bool wait_for(Pred pred, ms limit) {
        std::unique_lock l(m_);
        return cv_.wait_for(l, limit, pred);
    }
    void note_answer(bool gone) {
        std::lock_guard l(m_);
        ++answers_;
        if (gone) ++gone_answers_;
        cv_.notify_all();
    }

    mode how_;
    bool watch_;
    const net::server_context& ctx_;
    std::mutex m_;
    std::condition_variable cv_;
    std::vector<std::shared_ptr<net::app_port>> seen_;
    std::size_t parked_ = 0;
    std::size_t answers_ = 0;
    std::size_t gone_answers_ = 0;
    std::atomic<unsigned> refused_{0};
    std::atomic<unsigned> wakes_{0};
    app_thread thread_;   // last: joined before the rest goes
};

// ---- the client's end ---------------------------------------------------------

struct response {
    unsigned status = 0;
    std::string head;   // status line and fields, as sent, up to the blank line
    std::string body;   // de-chunked
    // The value of the first field called `name` (any case); "" if none.
    std::string field(std::string_view name) const {
        std::size_t at = head.find("\r\n");
        while (at != std::string::npos && at + 2 < head.size()) {
            std::size_t end = head.find("\r\n", at + 2);
            std::string_view line(head.data() + at + 2, (end == std::string::npos ? head.size() : end) - at - 2);
            std::size_t colon = line.find(':');
            if (colon != std::string_view::npos && boost::beast::iequals(line.substr(0, colon), name)) {
                auto v = line.substr(colon + 1);
                while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
                return std::string(v);
            }
            at = end;
        }
        return {};
    }
    bool has(std::string_view name) const { return head.find(std::string(name) + ":") != std::string::npos; }
};

class test_client {
public:
    explicit test_client(int fd) : fd_(fd) {}
    test_client(test_client&& o) noexcept : fd_(std::exchange(o.fd_, -1)), in_(std::move(o.in_)), eof_(o.eof_) {}
    test_client& operator=(test_client&&) = delete;
    ~test_client() { close(); }

    int fd() const { return fd_; }
    void close() {
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    }
    void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

    // All of `bytes`, or false (the server stopped reading for `limit`, or closed).
    bool send(std::string_view bytes, ms limit = patience) {
        auto until = steady::now() + limit;
        while (!bytes.empty()) {
            ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0) {
                bytes.remove_prefix(static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno != EAGAIN) return false;
            if (!wait_fd(POLLOUT, until)) return false;
        }
        return true;
    }

    // The next response: its head, and its body framed by Content-Length,
    // chunked, or (neither, and not `bodiless`) the end of the stream.
    // `bodiless`: the request was HEAD. nullopt: not complete within `limit`.
    std::optional<response> read_response(bool bodiless = false, ms limit = patience) {
        auto until = steady::now() + limit;
        for (int turns = 0; turns < 1'000'000; ++turns) {
            std::size_t used = 0;
            if (auto r = parse(bodiless, used)) {
                in_.erase(0, used);
                return r;
            }
            if (garbled_ || eof_ || !fill(until)) return std::nullopt;
        }
        return std::nullopt;
    }

    // True if the server ends the stream (end of file or a reset) within
    // `limit`, with no byte before it that has not been read as a response.
    bool closed_by_server(ms limit = patience) {
        auto until = steady::now() + limit;
        for (int turns = 0; turns < 1'000'000 && !eof_; ++turns)
            if (!fill(until)) break;
        return eof_ && in_.empty();
    }

    // True if nothing at all (no byte, no end of stream) arrives for `d`.
    bool quiet_for(ms d) {
        std::size_t had = in_.size();
        fill(steady::now() + d);
        return in_.size() == had && !eof_;
    }

    // Bytes received and not yet read as a response.
    const std::string& unread() const { return in_; }

private:
    bool wait_fd(short events, steady::time_point until) {
        for (;;) {
            auto left = std::chrono::duration_cast<ms>(until - steady::now()).count();
            if (left <= 0) return false;
            pollfd p{fd_, events, 0};
            int n = ::poll(&p, 1, static_cast<int>(left));
            if (n > 0) return true;
            if (n < 0 && errno != EINTR) return false;
        }
    }
    // Reads what is there (waiting until `until`). False: nothing came.
    bool fill(steady::time_point until) {
        if (eof_ || !wait_fd(POLLIN, until)) return false;
        char buf[64 * 1024];
        ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            in_.append(buf, static_cast<std::size_t>(n));
            return true;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
        eof_ = true;   // end of stream, or a reset
        return true;
    }
    // One whole response at the front of in_, or nullopt.
    std::optional<response> parse(bool bodiless, std::size_t& used) {
        std::size_t end = in_.find("\r\n\r\n");
        if (end == std::string::npos) return std::nullopt;
        response r;
        r.head = in_.substr(0, end);
        if (r.head.compare(0, 9, "HTTP/1.1 ") != 0 || r.head.size() < 12) {
            ADD_FAILURE() << "not a response: " << r.head;
            garbled_ = true;
            return std::nullopt;
        }
        r.status = static_cast<unsigned>(std::stoul(r.head.substr(9, 3)));
        std::size_t at = end + 4;
        bool no_body = bodiless || r.status < 200 || r.status == 204 || r.status == 304;
        if (no_body) {
        } else if (auto cl = r.field("content-length"); !cl.empty()) {
            std::size_t n = std::stoul(cl);
            if (in_.size() - at < n) return std::nullopt;
            r.body = in_.substr(at, n);
            at += n;
        } else if (r.field("transfer-encoding") == "chunked") {
            for (;;) {
                std::size_t line = in_.find("\r\n", at);
                if (line == std::string::npos) return std::nullopt;
                std::size_t n = std::stoul(in_.substr(at, line - at), nullptr, 16);
                at = line + 2;
                if (n == 0) break;
                if (in_.size() < at + n + 2) return std::nullopt;
                r.body.append(in_, at, n);
                at += n + 2;
            }
            // Trailers, up to the blank line.
            for (;;) {
                std::size_t line = in_.find("\r\n", at);
                if (line == std::string::npos) return std::nullopt;
                bool blank = line == at;
                at = line + 2;
                if (blank) break;
            }
        } else {
            if (!eof_) return std::nullopt;   // close-delimited
            r.body = in_.substr(at);
            at = in_.size();
        }
        used = at;
        return r;
    }

    int fd_;
    std::string in_;
    bool eof_ = false;
    bool garbled_ = false;
};

// ---- the server's end ----------------------------------------------------------

class connection_tester {
public:
    connection_tester() {
        ctx.router = &router_;
        router_.add("/thread", threaded);
        router_.add("/held", held);
        router_.add("/busy", busy);
        router_.add("/watch", watch);
        reg_.start();   // the watchdog: deadlines are checked every 250 ms
        io_ = std::thread([this] { ioc_.run(); });
    }

    ~connection_tester() {
        // Every connection is closed and must end; then the apps' threads
        // and the io thread stop.
        boost::asio::post(ioc_, [this] { reg_.close_all(); });
        EXPECT_TRUE(wait_sessions_done()) << "a session did not end after close_now";
        boost::asio::post(ioc_, [this] { reg_.stop(); });
        for (fake_app* a : {&now, &threaded, &held, &busy, &watch}) a->stop();
        work_.reset();
        ioc_.stop();
        io_.join();
        std::lock_guard l(m_);
        EXPECT_EQ(errors_, "");
    }

    // A new connection, served by a real session on the io thread.
    test_client open() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            ADD_FAILURE() << "socketpair failed";
            return test_client(-1);
        }
        {
            std::lock_guard l(m_);
            ++live_;
        }
        boost::asio::co_spawn(ioc_, serve(sv[0]), [this](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                std::lock_guard l(m_);
                errors_ += std::string("session threw: ") + x.what() + "\n";
            }
        });
        return test_client(sv[1]);
    }

    // Sessions whose run() has not returned yet.
    std::size_t live() {
        std::lock_guard l(m_);
        return live_;
    }
    bool wait_sessions_done(ms limit = patience) {
        std::unique_lock l(m_);
        return cv_.wait_for(l, limit, [&] { return live_ == 0; });
    }

private:
    boost::asio::io_context ioc_{1};
    net::session_registry reg_{ioc_.get_executor()};

public:
    net::server_context ctx;   // limits and the rest: set before open()
    fake_app now{fake_app::mode::at_once, false, ctx};
    fake_app threaded{fake_app::mode::on_thread, false, ctx};
    fake_app held{fake_app::mode::when_told, false, ctx};
    fake_app busy{fake_app::mode::refuse, false, ctx};
    fake_app watch{fake_app::mode::when_told, true, ctx};

private:
    boost::asio::awaitable<void> serve(int fd) {
        struct on_end {
            connection_tester& t;
            ~on_end() {
                std::lock_guard l(t.m_);
                --t.live_;
                t.cv_.notify_all();
            }
        } ending{*this};
        net::generic_socket sock(co_await boost::asio::this_coro::executor,
                                 boost::asio::generic::stream_protocol(AF_UNIX, 0), fd);
        net::endpoint_info ep;
        ep.is_unix = true;
        ep.server_name = "tester";
        auto s = std::make_shared<net::session>(std::move(sock), std::move(ep), nullptr, ctx, reg_);
        co_await s->run();
    }

    router::mount_table router_{&now, "trestle"};
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{ioc_.get_executor()};
    std::mutex m_;
    std::condition_variable cv_;
    std::size_t live_ = 0;
    std::string errors_;
    std::thread io_;
};

// A request's bytes: "GET /x HTTP/1.1" plus Host and any extra field lines.
inline std::string get(std::string_view target, std::string_view extra = {}, std::string_view version = "HTTP/1.1") {
    std::string r = "GET ";
    r += target;
    r += " ";
    r += version;
    r += "\r\nHost: tester\r\n";
    r += extra;
    r += "\r\n";
    return r;
}

} // namespace trestle::test_support
