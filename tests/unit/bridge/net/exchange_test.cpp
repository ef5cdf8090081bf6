// The exchange between an io thread and an app thread, with real threads:
// the body flows io -> app while the app blocks in read(), output flows
// app -> io through the high-water mark while the app blocks in write(),
// and abort() releases a blocked app. Run under .ci/tsan as well.
#include "bridge/net/exchange.hpp"
#include "bridge/net/wake_queue.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <fcntl.h>
#include <unistd.h>
#include <thread>
#include <vector>

namespace trestle::net {
namespace {

namespace asio = boost::asio;

// What a session's pump does, without a socket: takes the work, "writes"
// it, feeds the body in pieces, and parks on the wakeup timer between.
struct fake_io {
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    std::string body;          // to feed when the app asks
    std::size_t piece = 100;
    std::string written;
    bool keep_alive = false;
    bool aborted_early = false;
    std::size_t abort_after = std::string::npos;   // bytes of output, then abort

    void run(exchange& ex) {
        std::size_t pos = 0;
        for (int turns = 0; turns < 1'000'000; ++turns) {
            io_work w;
            if (!ex.take(w)) {
                bool fired = false;
                ex.wakeup_timer().expires_at(asio::steady_timer::time_point::max());
                ex.wakeup_timer().async_wait([&](boost::system::error_code) { fired = true; });
                while (!fired) ioc.run_one();
                continue;
            }
            written += w.out;
            if (!w.out.empty()) ex.output_written();
            if (written.size() >= abort_after) {
                aborted_early = true;
                ex.abort();
                return;
            }
            if (w.want_body) {
                std::string chunk = body.substr(pos, piece);
                pos += chunk.size();
                ex.push_body(chunk, pos >= body.size());
            }
            if (w.done) {
                keep_alive = w.keep_alive;
                return;
            }
        }
        FAIL() << "the exchange never finished";
    }
};

request_head post_head(std::size_t length) {
    request_head h;
    h.method = "POST";
    h.target = "/";
    h.content_length = length;
    return h;
}

TEST(exchange_threads, body_in_and_output_out_across_the_high_water_mark) {
    fake_io io;
    for (int i = 0; i < 20000; ++i) io.body += static_cast<char>('a' + i % 26);
    endpoint_info ep;
    auto ex = std::make_shared<exchange>(io.wakes, post_head(io.body.size()), ep, 4096);
    auto guard = asio::make_work_guard(io.ioc);
    std::thread io_thread([&] { io.run(*ex); });

    // The app: reads the whole body (blocking), echoes it in odd pieces
    // through write() (blocking above 4 KiB), twice, then finishes.
    std::string got;
    char buf[333];
    for (;;) {
        auto n = ex->read(buf, sizeof buf);
        ASSERT_TRUE(n.has_value());
        if (*n == 0) break;
        got.append(buf, *n);
    }
    EXPECT_EQ(got, io.body);
    EXPECT_TRUE(ex->body_consumed());
    for (int round = 0; round < 2; ++round)
        for (std::size_t i = 0; i < got.size(); i += 777) {
            std::string part = got.substr(i, 777);
            ASSERT_TRUE(ex->write(part));
            EXPECT_TRUE(part.empty());
        }
    std::string last = "END";
    ex->finish(true, last);
    io_thread.join();
    EXPECT_EQ(io.written, got + got + "END");
    EXPECT_TRUE(io.keep_alive);
}

TEST(exchange_threads, abort_releases_an_app_blocked_in_write) {
    fake_io io;
    io.abort_after = 8192;   // the client "leaves" after 8 KiB
    endpoint_info ep;
    request_head h;
    h.method = "GET";
    h.target = "/";
    auto ex = std::make_shared<exchange>(io.wakes, h, ep, 4096);
    ex->preload_body({});
    auto guard = asio::make_work_guard(io.ioc);
    std::thread io_thread([&] { io.run(*ex); });

    bool ok = true;
    int writes = 0;
    for (; writes < 100000 && ok; ++writes) {
        std::string part(1000, 'x');
        ok = ex->write(part);
    }
    io_thread.join();
    EXPECT_FALSE(ok);                 // write() returned instead of blocking forever
    EXPECT_TRUE(io.aborted_early);
    EXPECT_TRUE(ex->client_gone());
    EXPECT_LT(writes, 100000);
    std::string rest = "late";
    ex->finish(true, rest);           // finishing after an abort is harmless
}

TEST(exchange_threads, cancel_reads_releases_every_blocked_reader_for_good) {
    // Threads an app left reading wsgi.input when its request ends: no body
    // ever comes (no io side here), so only cancel_reads() can wake them.
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    endpoint_info ep;
    auto ex = std::make_shared<exchange>(wakes, post_head(100), ep, 4096);
    std::atomic<int> woken{0}, failed{0};
    std::vector<std::thread> readers;
    for (int i = 0; i < 3; ++i)
        readers.emplace_back([&] {
            char buf[10];
            auto n = ex->read(buf, sizeof buf);
            if (!n) ++failed;
            ++woken;
        });
    // The readers may or may not be waiting yet; either way they must end.
    ex->cancel_reads();
    for (auto& t : readers) t.join();
    EXPECT_EQ(woken.load(), 3);
    EXPECT_EQ(failed.load(), 3);
    char buf[10];
    EXPECT_FALSE(ex->read(buf, sizeof buf).has_value());   // and any later read
}

TEST(exchange_threads, waker_is_called_for_body_and_drain) {
    // An app on an event loop (ASGI) never blocks: it registers a waker.
    fake_io io;
    io.body = std::string(1000, 'b');
    endpoint_info ep;
    auto ex = std::make_shared<exchange>(io.wakes, post_head(io.body.size()), ep, 4096);
    std::atomic<int> wakes{0};
    ex->set_app_waker([&] { wakes.fetch_add(1); });
    auto guard = asio::make_work_guard(io.ioc);
    std::thread io_thread([&] { io.run(*ex); });

    std::string got;
    char buf[256];
    for (int spins = 0; spins < 10'000'000; ++spins) {
        auto n = ex->try_read(buf, sizeof buf);
        if (!n) {
            ex->request_body();
            std::this_thread::yield();
            continue;
        }
        if (*n == 0) break;
        got.append(buf, *n);
    }
    EXPECT_EQ(got, io.body);
    std::string last = got;
    ex->finish(true, last);
    io_thread.join();
    EXPECT_EQ(io.written, io.body);
    EXPECT_GT(wakes.load(), 0);
}

// The access log reads an aborted exchange's status and byte count on the io
// thread while its app may still be setting them (issue 10 item 12); they
// are atomic, which .ci/tsan checks here.
TEST(exchange_threads, log_facts_are_read_while_the_app_writes_them) {
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    endpoint_info ep;
    auto ex = std::make_shared<exchange>(wakes, request_head{}, ep, 4096);
    ex->abort();
    std::thread app([&] {
        ex->set_status(200);
        for (int i = 0; i < 10000; ++i) ex->add_body_bytes(1);
        std::string last;
        ex->finish(false, last);
    });
    std::uint64_t seen = 0;
    for (int i = 0; i < 10000; ++i) {
        unsigned st = ex->status();
        EXPECT_TRUE(st == 0 || st == 200);
        std::uint64_t b = ex->body_bytes();
        EXPECT_GE(b, seen);
        seen = b;
        (void)ex->finished_at();
    }
    app.join();
    EXPECT_EQ(ex->body_bytes(), 10000u);
}

// A file job owns its descriptor wherever it is dropped: queued and never
// taken, taken by an io side that gives up before sending it, or refused
// because the client is gone (issue 10 item 1).
bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(exchange_files, every_dropped_file_job_closes_its_descriptor) {
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    endpoint_info ep;
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    unique_fd keep_write(p[1]);
    {   // queued, never taken: the exchange's end closes it
        auto ex = std::make_shared<exchange>(wakes, request_head{}, ep, 4096);
        int fd = ::dup(p[0]);
        ex->queue_file({unique_fd(fd), 0, 1});
        ex.reset();
        EXPECT_FALSE(fd_open(fd));
    }
    {   // queued, then the client leaves: abort closes it at once
        auto ex = std::make_shared<exchange>(wakes, request_head{}, ep, 4096);
        int fd = ::dup(p[0]);
        ex->queue_file({unique_fd(fd), 0, 1});
        ex->abort();
        EXPECT_FALSE(fd_open(fd));
    }
    {   // taken by the io side, which returns before sending it
        auto ex = std::make_shared<exchange>(wakes, request_head{}, ep, 4096);
        int fd = ::dup(p[0]);
        ex->queue_file({unique_fd(fd), 0, 1});
        {
            io_work w;
            ASSERT_TRUE(ex->take(w));
            ASSERT_TRUE(w.file);
            EXPECT_TRUE(fd_open(fd));
        }
        EXPECT_FALSE(fd_open(fd));
    }
    {   // refused after abort
        auto ex = std::make_shared<exchange>(wakes, request_head{}, ep, 4096);
        ex->abort();
        int fd = ::dup(p[0]);
        EXPECT_FALSE(ex->send_file({unique_fd(fd), 0, 1}));
        EXPECT_FALSE(fd_open(fd));
        fd = ::dup(p[0]);
        ex->queue_file({unique_fd(fd), 0, 1});
        EXPECT_FALSE(fd_open(fd));
    }
    ::close(p[0]);
}


// --timeout: what the io side must do at the deadline, and what the app
// side sees after it (issue 11).
struct recording_listener : timeout_listener {
    int calls = 0;
    bool answered = false;
    void* tag = nullptr;
    bool timed_out_seen = true;
    void request_timed_out(app_port& ex, bool a, void* t) override {
        ++calls;
        answered = a;
        tag = t;
        timed_out_seen = ex.timed_out();   // told before the app side can see it
    }
};

std::shared_ptr<exchange> get_exchange(wake_queue& wakes) {
    endpoint_info ep;
    request_head h;
    h.method = "GET";
    h.target = "/slow";
    auto ex = std::make_shared<exchange>(wakes, h, ep, 4096);
    ex->preload_body({});
    return ex;
}

TEST(exchange_timeout, not_armed_never_due_never_cut) {
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    auto ex = get_exchange(wakes);
    EXPECT_FALSE(ex->timeout_due(std::chrono::steady_clock::now() + std::chrono::hours(24)));
    EXPECT_EQ(ex->time_out(), exchange::timeout_verdict::none);
    EXPECT_FALSE(ex->timed_out());
    EXPECT_FALSE(ex->client_gone());
}

TEST(exchange_timeout, nothing_sent_is_answered_and_later_output_dropped) {
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    auto ex = get_exchange(wakes);
    recording_listener l;
    int tag = 0;
    auto t0 = std::chrono::steady_clock::now();
    ex->arm_timeout(t0 + std::chrono::seconds(1), &l, &tag);
    EXPECT_FALSE(ex->timeout_due(t0));
    EXPECT_TRUE(ex->timeout_due(t0 + std::chrono::seconds(1)));
    std::atomic<int> app_wakes{0};
    ex->set_app_waker([&] { ++app_wakes; });

    EXPECT_EQ(ex->time_out(), exchange::timeout_verdict::answer);
    EXPECT_EQ(l.calls, 1);
    EXPECT_TRUE(l.answered);
    EXPECT_EQ(l.tag, &tag);
    EXPECT_FALSE(l.timed_out_seen);
    EXPECT_TRUE(ex->timed_out());
    EXPECT_EQ(ex->status(), 504u);   // for the access log
    EXPECT_GT(app_wakes.load(), 0);      // an app on the loop learns of it
    EXPECT_FALSE(ex->timeout_due(t0 + std::chrono::hours(1)));   // once
    EXPECT_EQ(ex->time_out(), exchange::timeout_verdict::none);
    EXPECT_EQ(l.calls, 1);

    // The app's late answer goes nowhere.
    std::string late = "HTTP/1.1 200 OK\r\n\r\n";
    EXPECT_EQ(ex->try_write(late), exchange::write_result::gone);
    EXPECT_FALSE(ex->write(late));
    ex->finish(true, late);
    io_work w;
    ex->take(w);
    EXPECT_TRUE(w.out.empty());
}

TEST(exchange_timeout, started_response_is_closed) {
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    auto ex = get_exchange(wakes);
    recording_listener l;
    ex->arm_timeout(std::chrono::steady_clock::now(), &l);
    std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    ASSERT_EQ(ex->try_write(head), exchange::write_result::ok);
    EXPECT_EQ(ex->time_out(), exchange::timeout_verdict::close);
    EXPECT_FALSE(l.answered);
    EXPECT_NE(ex->status(), 504u);
    EXPECT_TRUE(ex->client_gone());
}

TEST(exchange_timeout, finished_response_is_left_alone) {
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    auto ex = get_exchange(wakes);
    recording_listener l;
    ex->arm_timeout(std::chrono::steady_clock::now(), &l);
    std::string all = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    ex->finish(true, all);   // finished in time; the io side just has not taken it yet
    EXPECT_EQ(ex->time_out(), exchange::timeout_verdict::none);
    EXPECT_EQ(l.calls, 0);
    EXPECT_FALSE(ex->timed_out());
    io_work w;
    ASSERT_TRUE(ex->take(w));
    EXPECT_TRUE(w.done);
    EXPECT_FALSE(w.out.empty());
}

TEST(exchange_timeout, releases_an_app_blocked_in_write_or_read) {
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    endpoint_info ep;
    auto ex = std::make_shared<exchange>(wakes, post_head(100), ep, 16);
    ex->arm_timeout(std::chrono::steady_clock::now());
    std::string big(64, 'x');
    ASSERT_EQ(ex->try_write(big), exchange::write_result::ok);   // above the mark: the next write waits
    std::atomic<bool> write_back{false}, read_back{false};
    std::thread writer([&] {
        std::string more(64, 'y');
        EXPECT_FALSE(ex->write(more));
        write_back = true;
    });
    std::thread reader([&] {
        char buf[10];
        EXPECT_FALSE(ex->read(buf, sizeof buf).has_value());
        read_back = true;
    });
    EXPECT_EQ(ex->time_out(), exchange::timeout_verdict::close);
    writer.join();
    reader.join();
    EXPECT_TRUE(write_back && read_back);
}

// The one way back to a connection: what app sides produce reaches each
// exchange's driver on the io thread, and a burst of wakeups before the io
// thread runs costs one handler there, not one per wakeup.
class counting_driver final : public exchange_driver {
public:
    void exchange_ready(protocol_port& ex) override {
        ++calls;
        on_io_thread = on_io_thread && std::this_thread::get_id() == io_thread;
        io_work w;
        while (!done && ex.take(w)) {
            out += w.out;
            if (!w.out.empty()) ex.output_written();
            done = w.done;
            w = io_work{};
        }
    }
    std::thread::id io_thread = std::this_thread::get_id();
    int calls = 0;
    bool on_io_thread = true;
    bool done = false;
    std::string out;
};

TEST(wake_queue, wakes_from_other_threads_reach_the_driver_on_the_io_thread_in_one_batch) {
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    constexpr int n = 8;
    std::vector<std::shared_ptr<exchange>> exs;
    std::vector<counting_driver> drivers(n);
    for (int i = 0; i < n; ++i) {
        exs.push_back(std::make_shared<exchange>(wakes, request_head{}, endpoint_info{}, 4096));
        exs.back()->set_driver(&drivers[static_cast<std::size_t>(i)]);
        io_work w;
        ASSERT_FALSE(exs.back()->take(w));   // parked: the next output wakes the io side
    }
    std::vector<std::thread> apps;
    for (int i = 0; i < n; ++i)
        apps.emplace_back([&, i] {
            std::string last = "response " + std::to_string(i);
            exs[static_cast<std::size_t>(i)]->finish(true, last);
        });
    for (auto& t : apps) t.join();
    EXPECT_EQ(ioc.poll(), 1u);   // one drain for the whole burst
    for (int i = 0; i < n; ++i) {
        auto& d = drivers[static_cast<std::size_t>(i)];
        EXPECT_EQ(d.calls, 1);
        EXPECT_TRUE(d.on_io_thread);
        EXPECT_TRUE(d.done);
        EXPECT_EQ(d.out, "response " + std::to_string(i));
    }
}

TEST(wake_queue, an_exchange_without_a_driver_wakes_its_timer) {
    asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    auto ex = std::make_shared<exchange>(wakes, request_head{}, endpoint_info{}, 4096);
    io_work w;
    ASSERT_FALSE(ex->take(w));
    bool fired = false;
    ex->wakeup_timer().expires_at(asio::steady_timer::time_point::max());
    ex->wakeup_timer().async_wait([&](boost::system::error_code) { fired = true; });
    std::thread app([&] {
        std::string bytes = "x";
        EXPECT_EQ(ex->try_write(bytes), exchange::write_result::ok);
    });
    app.join();
    for (int i = 0; i < 10 && !fired; ++i) ioc.run_one();
    EXPECT_TRUE(fired);
    ASSERT_TRUE(ex->take(w));
    EXPECT_EQ(w.out, "x");
}

} // namespace
} // namespace trestle::net
