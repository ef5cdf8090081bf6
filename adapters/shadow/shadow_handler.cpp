#include "adapters/shadow/shadow_handler.hpp"

#include "adapters/shadow/ports.hpp"
#include "bridge/net/app_port.hpp"
#include "bridge/net/request.hpp"

namespace trestle::shadow {

duties shadow_handler::duties_for(const net::request_head& head) const {
    duties d = primary_->duties_for(head);
    // A body to replay is gathered before the primary runs, so that what it
    // leaves unread is at hand when it finishes.
    if (head.has_body() && mirror_->wants(head)) d.buffer_body = true;
    return d;
}

bool shadow_handler::submit(std::shared_ptr<net::app_port> ex) {
    const net::request_head& h = ex->head();
    if (!mirror_->wants(h)) return primary_->submit(std::move(ex));
    if (h.content_length && *h.content_length > mirror_->settings().max_body) {
        mirror_->dropped(drop::body_too_large);
        return primary_->submit(std::move(ex));
    }
    if (!mirror_->take_slot()) return primary_->submit(std::move(ex));
    // If the primary refuses (503), the tee goes with its slot.
    return primary_->submit(std::make_shared<tee_port>(std::move(ex), slot(mirror_), mirror_->settings().max_body));
}

} // namespace trestle::shadow
