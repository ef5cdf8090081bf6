// The access log around its format: a real exchange answered through the
// response writer, recorded to a file; the response head kept only when the
// format shows it; a bad format refused when the log opens.
#include "bridge/observability/access_log.hpp"

#include "bridge/net/exchange.hpp"
#include "bridge/net/wake_queue.hpp"
#include "bridge/net/response_writer.hpp"
#include "bridge/net/server_context.hpp"

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace trestle {
namespace {

namespace asio = boost::asio;

struct temp_log {
    std::string path;
    temp_log() {
        char name[] = "/tmp/trestle-access-XXXXXX";
        int fd = ::mkstemp(name);
        EXPECT_GE(fd, 0);
        ::close(fd);
        path = name;
    }
    ~temp_log() { ::unlink(path.c_str()); }
    std::string text() const {
        std::ifstream in(path);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
};

// One request answered 200 with `fields` and a 5-byte body, then logged.
std::string answer_and_log(std::string_view format, bool keep_head_by_format = true) {
    temp_log file;
    asio::io_context ioc;
    net::wake_queue wakes{ioc.get_executor()};
    net::server_context ctx;
    {
        access_log log(file.path, format);
        ctx.access = &log;
        ctx.log_response_head = keep_head_by_format && log.needs_response_head();
        net::request_head head;
        head.method = "GET";
        head.target = "/x?y=1";
        head.headers = {{"User-Agent", "unit"}};
        net::endpoint_info ep;
        ep.remote_addr = "127.0.0.1";
        auto ex = std::make_shared<net::exchange>(wakes, head, ep, 4096);
        auto started = std::chrono::steady_clock::now();
        {
            net::response_writer w(*ex, ctx);
            w.set_head(200, "200 OK", "Content-Type: text/plain\r\nX-Request-ID: rid-7\r\n", 5);
            w.emit_head(5);
            w.append_body("hello");
            w.end_body();
            w.finish(false);
        }
        log.record(*ex, started, ex->finished_at());
    }   // closed: flushed
    return file.text();
}

TEST(access_log, writes_the_combined_line_by_default) {
    std::string line = answer_and_log("combined");
    EXPECT_TRUE(line.starts_with("127.0.0.1 - - [")) << line;
    EXPECT_NE(line.find(R"(] "GET /x?y=1 HTTP/1.1" 200 5 "-" "unit" 0.)"), std::string::npos) << line;
    EXPECT_TRUE(line.ends_with("\n")) << line;
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
}

TEST(access_log, keeps_the_response_head_for_a_format_that_shows_it) {
    std::string line = answer_and_log("%(s)s %({content-type}o)s %({content-length}o)s %({x-request-id}o)s %({server}o)s");
    EXPECT_EQ(line, "200 text/plain 5 rid-7 trestle\n");
    // Without the context's flag nothing is kept: '-' (the flag is what costs).
    EXPECT_EQ(answer_and_log("%({content-type}o)s", false), "-\n");
}

TEST(access_log, json_takes_the_request_id_from_the_response) {
    std::string line = answer_and_log("json");
    EXPECT_NE(line.find(R"("status":200,"bytes":5,)"), std::string::npos) << line;
    EXPECT_NE(line.find(R"("request_id":"rid-7","pid":)" + std::to_string(::getpid()) + "}\n"), std::string::npos) << line;
}

TEST(access_log, a_bad_format_is_refused_when_the_log_opens) {
    temp_log file;
    try {
        access_log log(file.path, "%(h)s %(nope)s");
        FAIL() << "accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("--access-log-format: unknown atom %(nope)s", 0), 0u) << e.what();
    }
}

// Worker processes append to one file: each write(2) must hold whole lines,
// or a line of one is cut by a line of the other (stdio's buffer was written
// out at 4 KiB, mid-line, and two workers' lines interleaved).
TEST(access_log, lines_of_two_processes_never_cut_into_each_other) {
    temp_log file;
    constexpr int lines = 4000;
    auto write_lines = [&](char fill) {
        asio::io_context ioc;
    net::wake_queue wakes{ioc.get_executor()};
        net::request_head head;
        head.method = "GET";
        head.target = "/";
        head.headers = {{"X-Pad", std::string(300, fill)}};
        net::endpoint_info ep;
        auto ex = std::make_shared<net::exchange>(wakes, head, ep, 4096);
        access_log log(file.path, "%(p)s %({x-pad}i)s");
        auto now = std::chrono::steady_clock::now();
        for (int i = 0; i < lines; ++i) log.record(*ex, now, now);
    };
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        write_lines('c');
        ::_exit(0);
    }
    write_lines('p');
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::istringstream in(file.text());
    std::string want_parent = "<" + std::to_string(::getpid()) + "> " + std::string(300, 'p');
    std::string want_child = "<" + std::to_string(child) + "> " + std::string(300, 'c');
    int parent_lines = 0, child_lines = 0, broken = 0;
    for (std::string line; std::getline(in, line);) {
        if (line == want_parent) ++parent_lines;
        else if (line == want_child) ++child_lines;
        else ++broken;
    }
    EXPECT_EQ(broken, 0);
    EXPECT_EQ(parent_lines, lines);
    EXPECT_EQ(child_lines, lines);
}

// The io side reads an aborted exchange's response head while its app may
// be setting it: published once, with release (.ci/tsan checks this).
TEST(access_log, the_response_head_is_read_while_the_app_sets_it) {
    asio::io_context ioc;
    net::wake_queue wakes{ioc.get_executor()};
    net::endpoint_info ep;
    auto ex = std::make_shared<net::exchange>(wakes, net::request_head{}, ep, 4096);
    ex->abort();
    std::thread app([&] {
        ex->set_response_head("A: 1\r\n");
        ex->set_response_head("B: 2\r\n");   // ignored: set once
    });
    for (int i = 0; i < 10000; ++i) {
        std::string_view h = ex->response_head();
        EXPECT_TRUE(h.empty() || h == "A: 1\r\n") << h;
    }
    app.join();
    EXPECT_EQ(ex->response_head(), "A: 1\r\n");
}

} // namespace
} // namespace trestle
