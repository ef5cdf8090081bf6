#include "bridge/net/ws_close_filter.hpp"

namespace trestle::net {

void close_code_scanner::header_done() {
    std::size_t at = 2;
    std::uint64_t len = hdr_[1] & 0x7F;
    if (len == 126) {
        len = (std::uint64_t{hdr_[2]} << 8) | hdr_[3];
        at = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | hdr_[2 + i];
        at = 10;
    }
    bool masked = hdr_[1] & 0x80;
    for (int i = 0; i < 4; ++i) mask_[i] = masked ? hdr_[at + i] : 0;
    close_ = (hdr_[0] & 0x0F) == 0x8;
    payload_left_ = len;
    payload_pos_ = 0;
    spoil_reason_ = false;
    in_payload_ = len > 0;
    hdr_len_ = 0;
    hdr_need_ = 2;
}

// One byte of a close frame's payload: the code's two bytes, then the reason.
void close_code_scanner::close_byte(unsigned char* p) {
    unsigned char m = mask_[payload_pos_ % 4];
    unsigned char v = *p ^ m;
    if (payload_pos_ == 0) {
        high_ = p;
        high_value_ = v;
        // 0x14 and up: at least 5120 whatever the low byte; a high byte of 0
        // makes a code under 256, which Beast refuses.
        if (v >= 0x14) *p = m;
    } else if (payload_pos_ == 1 && high_value_ == 0x13 && v >= 0x88) {
        if (high_) *high_ = mask_[0];   // the high byte is still in this read
        else spoil_reason_ = true;       // too late for the code: spoil the reason
    } else if (payload_pos_ == 2 && spoil_reason_) {
        *p = static_cast<unsigned char>(0xFF ^ m);   // never valid in UTF-8
    }
}

void close_code_scanner::scan(unsigned char* p, std::size_t n) {
    high_ = nullptr;   // bytes of an earlier read have gone to Beast
    while (n > 0) {
        if (!in_payload_) {
            hdr_[hdr_len_++] = *p++;
            --n;
            if (hdr_len_ == 2) {
                std::size_t len7 = hdr_[1] & 0x7F;
                hdr_need_ = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((hdr_[1] & 0x80) ? 4 : 0);
            }
            if (hdr_len_ == hdr_need_) header_done();
            continue;
        }
        if (close_ && payload_pos_ < 3) {
            close_byte(p);
            ++p;
            --n;
            ++payload_pos_;
            --payload_left_;
        } else {
            // Data, or the rest of a reason: skip it whole.
            std::uint64_t k = payload_left_ < n ? payload_left_ : n;
            p += k;
            n -= static_cast<std::size_t>(k);
            payload_pos_ += k;
            payload_left_ -= k;
        }
        if (payload_left_ == 0) in_payload_ = false;
    }
    high_ = nullptr;
}

} // namespace trestle::net
