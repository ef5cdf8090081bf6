#include "bridge/net/ws_close_filter.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace trestle::net {
namespace {

using bytes = std::vector<unsigned char>;

// A masked client frame, as a browser sends it.
bytes frame(unsigned opcode, const bytes& payload, const unsigned char mask[4]) {
    bytes f{static_cast<unsigned char>(0x80 | opcode)};
    if (payload.size() < 126) {
        f.push_back(static_cast<unsigned char>(0x80 | payload.size()));
    } else if (payload.size() < 65536) {
        f.push_back(0x80 | 126);
        f.push_back(static_cast<unsigned char>(payload.size() >> 8));
        f.push_back(static_cast<unsigned char>(payload.size()));
    } else {
        f.push_back(0x80 | 127);
        for (int i = 7; i >= 0; --i) f.push_back(static_cast<unsigned char>(std::uint64_t{payload.size()} >> (8 * i)));
    }
    f.insert(f.end(), mask, mask + 4);
    for (std::size_t i = 0; i < payload.size(); ++i) f.push_back(payload[i] ^ mask[i % 4]);
    return f;
}

bytes close_payload(unsigned code, const std::string& reason = {}) {
    bytes p{static_cast<unsigned char>(code >> 8), static_cast<unsigned char>(code)};
    p.insert(p.end(), reason.begin(), reason.end());
    return p;
}

const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};

// Feeds `stream` (changed in place) in pieces of `step` bytes; returns the unmasked payload of
// the last frame (a close frame in these tests).
bytes scan_in_pieces(bytes& stream, std::size_t step, std::size_t close_at) {
    close_code_scanner s;
    for (std::size_t at = 0; at < stream.size(); at += step)
        s.scan(stream.data() + at, std::min(step, stream.size() - at));
    std::size_t hdr = 6;
    bytes out;
    for (std::size_t i = close_at + hdr; i < stream.size(); ++i) out.push_back(stream[i] ^ mask[(i - close_at - hdr) % 4]);
    return out;
}

unsigned code_of(const bytes& p) { return (unsigned{p[0]} << 8) | p[1]; }

TEST(close_code_scanner, leaves_codes_an_endpoint_may_send) {
    for (unsigned code : {1000u, 1001u, 1011u, 3000u, 4999u, 1005u, 999u}) {
        bytes f = frame(0x8, close_payload(code, "ok"), mask);
        EXPECT_EQ(code_of(scan_in_pieces(f, f.size(), 0)), code) << code;
    }
}

TEST(close_code_scanner, zeroes_a_code_of_5000_and_more_whole_or_byte_by_byte) {
    for (unsigned code : {5000u, 5119u, 5120u, 65535u}) {
        for (std::size_t step : {std::size_t{1}, std::size_t{3}, std::size_t{100}}) {
            bytes f = frame(0x8, close_payload(code, "bye"), mask);
            bytes p = scan_in_pieces(f, step, 0);
            // Whole: the code is under 256 (Beast refuses it). Split between the two code bytes
            // with a high byte of 0x13: the reason is made invalid UTF-8 instead.
            EXPECT_TRUE(code_of(p) < 256 || p[2] == 0xFF) << code << " step " << step;
            EXPECT_EQ(p.size(), 5u);
        }
    }
}

TEST(close_code_scanner, follows_data_frames_of_every_length_encoding) {
    for (std::size_t len : {std::size_t{0}, std::size_t{125}, std::size_t{126}, std::size_t{70000}}) {
        bytes data(len, 'a');
        bytes stream = frame(0x2, data, mask);
        std::size_t close_at = stream.size();
        bytes c = frame(0x8, close_payload(6000), mask);
        stream.insert(stream.end(), c.begin(), c.end());
        for (std::size_t step : {std::size_t{7}, std::size_t{4096}}) {
            bytes copy = stream;
            EXPECT_LT(code_of(scan_in_pieces(copy, step, close_at)), 256u) << len << " step " << step;
            // The data frame itself is untouched.
            EXPECT_TRUE(std::equal(stream.begin(), stream.begin() + close_at, copy.begin()));
        }
    }
}

} // namespace
} // namespace trestle::net
