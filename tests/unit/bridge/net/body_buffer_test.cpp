// The body gathered before a WSGI app runs: memory up to a bound, then an
// unlinked temporary file that leaves nothing behind; the exchange reads it
// back on the app's thread; and the minimum receive rate's deadline.
#include "bridge/net/body_buffer.hpp"
#include "bridge/net/exchange.hpp"
#include "bridge/net/wake_queue.hpp"

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace trestle::net {
namespace {

using namespace std::chrono_literals;

struct temp_dir {
    std::string path;
    temp_dir() {
        char t[] = "/tmp/trestle-body-test-XXXXXX";
        path = ::mkdtemp(t);
    }
    ~temp_dir() { ::rmdir(path.c_str()); }
    int entries() const {
        int n = 0;
        DIR* d = ::opendir(path.c_str());
        while (dirent* e = ::readdir(d))
            if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") ++n;
        ::closedir(d);
        return n;
    }
};

std::string pattern(std::size_t n, std::size_t seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
    return s;
}

TEST(body_buffer, small_body_stays_in_memory) {
    temp_dir dir;
    body_buffer b(1024, dir.path, std::nullopt);
    std::string piece = pattern(100, 1);
    ASSERT_TRUE(b.append(piece));
    EXPECT_TRUE(piece.empty());
    std::string more = "tail";
    ASSERT_TRUE(b.append(more));
    EXPECT_FALSE(b.spilled());
    EXPECT_EQ(b.size(), 104u);
    EXPECT_EQ(b.take_memory(), pattern(100, 1) + "tail");
    EXPECT_EQ(dir.entries(), 0);
}

TEST(body_buffer, a_body_in_one_piece_is_taken_not_copied) {
    temp_dir dir;
    body_buffer b(1024, dir.path, std::nullopt);
    std::string piece = pattern(700, 2);
    const char* data = piece.data();
    ASSERT_TRUE(b.append(piece));
    std::string body = b.take_memory();
    EXPECT_EQ(body.data(), data);
    EXPECT_EQ(body, pattern(700, 2));
}

TEST(body_buffer, large_body_spills_to_an_unlinked_file_read_back_exactly) {
    temp_dir dir;
    body_buffer b(1000, dir.path, 5000);
    std::string expected;
    for (int i = 0; i < 5; ++i) {
        std::string piece = pattern(1000, static_cast<std::size_t>(i));
        expected += piece;
        ASSERT_TRUE(b.append(piece)) << b.error();
    }
    EXPECT_TRUE(b.spilled());
    EXPECT_EQ(b.size(), 5000u);
    EXPECT_EQ(dir.entries(), 0);   // unlinked from the start
    body_file f = b.take_file();
    ASSERT_TRUE(f.valid());
    EXPECT_EQ(f.size(), 5000u);
    std::string back(5000, '\0');
    ASSERT_TRUE(f.read_at(0, back.data(), 1234));
    ASSERT_TRUE(f.read_at(1234, back.data() + 1234, 5000 - 1234));
    EXPECT_EQ(back, expected);
    char c;
    EXPECT_FALSE(f.read_at(5000, &c, 1));   // past the end is an error, not a hang
}

TEST(body_buffer, temp_file_is_close_on_exec_and_closed_with_its_owner) {
    temp_dir dir;
    int fd = open_unlinked_temp(dir.path);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
    {
        body_file f(fd, 0);
    }
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1);   // closed by the destructor
    EXPECT_EQ(dir.entries(), 0);
}

TEST(body_buffer, unusable_temp_dir_is_an_error_with_a_reason) {
    body_buffer b(10, "/nonexistent-trestle-dir", std::nullopt);
    std::string piece(100, 'x');
    EXPECT_FALSE(b.append(piece));
    EXPECT_NE(b.error().find("/nonexistent-trestle-dir"), std::string::npos);
}

TEST(exchange_body, reads_a_memory_prefix_then_a_file_body_only_through_read) {
    temp_dir dir;
    body_buffer b(10, dir.path, std::nullopt);
    std::string all = pattern(3000, 3);
    std::string copy = all;
    ASSERT_TRUE(b.append(copy));
    boost::asio::io_context ioc;
    wake_queue wakes{ioc.get_executor()};
    exchange ex(wakes, request_head{}, endpoint_info{}, 1024);
    ex.preload_body_file(b.take_file());
    char buf[1024];
    // try_read (called with the GIL held) never touches the disk.
    EXPECT_FALSE(ex.try_read(buf, sizeof buf).has_value());
    EXPECT_FALSE(ex.body_consumed());
    std::string got;
    for (int i = 0; i < 10; ++i) {
        auto n = ex.read(buf, sizeof buf);
        ASSERT_TRUE(n.has_value());
        if (*n == 0) break;
        got.append(buf, *n);
    }
    EXPECT_EQ(got, all);
    EXPECT_TRUE(ex.body_consumed());
    EXPECT_EQ(ex.try_read(buf, sizeof buf), std::optional<std::size_t>(0));
}

TEST(body_rate, off_when_zero) {
    body_rate r(0, 10s);
    r.start();
    r.resume(body_rate::clock::time_point{} + 1s);
    EXPECT_EQ(r.deadline(), body_rate::clock::time_point::max());
}

TEST(body_rate, each_window_must_bring_rate_times_window_bytes) {
    using tp = body_rate::clock::time_point;
    tp t0{};
    body_rate r(100, 10s);   // 1000 bytes per 10 s of waiting
    r.start();
    r.resume(t0);
    EXPECT_EQ(r.deadline(), t0 + 10s);
    r.pause(t0 + 4s);
    r.add(999, t0 + 4s);
    EXPECT_EQ(r.deadline(), tp::max());   // not waiting: no deadline
    // The app took 100 s before asking for more: that time does not count.
    r.resume(t0 + 104s);
    EXPECT_EQ(r.deadline(), t0 + 110s);
    r.pause(t0 + 105s);
    r.add(1, t0 + 105s);   // window met: a new one starts
    r.resume(t0 + 105s);
    EXPECT_EQ(r.deadline(), t0 + 115s);
    // A byte now and then does not move it.
    r.pause(t0 + 114s);
    r.add(1, t0 + 114s);
    r.resume(t0 + 114s);
    EXPECT_EQ(r.deadline(), t0 + 115s);
}

} // namespace
} // namespace trestle::net
