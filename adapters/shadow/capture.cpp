#include "adapters/shadow/capture.hpp"

namespace trestle::shadow {

const std::string* captured_response::field(std::string_view lower_name) const {
    for (auto& [n, v] : headers)
        if (n == lower_name) return &v;
    return nullptr;
}

bool captured_response::same_as(const captured_response& o, const std::vector<std::string>& fields) const {
    if (status != o.status || size != o.size || digest != o.digest || body != o.body) return false;
    if (unseen || o.unseen || malformed || o.malformed || !complete || !o.complete) return false;
    for (auto& name : fields) {
        const std::string* a = field(name);
        const std::string* b = o.field(name);
        if ((a == nullptr) != (b == nullptr) || (a && *a != *b)) return false;
    }
    return true;
}

void response_capture::feed(std::string_view bytes) {
    if (r_.malformed || bytes.empty()) return;
    if (!decoder_.feed(bytes, *this)) r_.malformed = true;
}

void response_capture::file(std::uint64_t n) {
    r_.unseen = true;
    r_.size += n;
    if (!r_.malformed) decoder_.skip(n, *this);
}

void response_capture::finish() {
    if (!r_.malformed) decoder_.finish(*this);
}

void response_capture::on_head(unsigned status, net::h1_response_decoder::fields f, bool final) {
    if (!final) return;   // 100, 103: not part of what is compared
    r_.status = status;
    r_.headers = std::move(f);
}

void response_capture::on_body(std::string_view data) {
    r_.size += data.size();
    for (unsigned char c : data) {
        r_.digest ^= c;
        r_.digest *= 1099511628211ull;
    }
    if (r_.body.size() < cap_) r_.body.append(data.substr(0, cap_ - r_.body.size()));
}

void response_capture::on_end(net::h1_response_decoder::fields) { r_.complete = true; }

} // namespace trestle::shadow
