#pragma once
// A mount with a shadow (docs/configuration.md, "Shadow mode"): the primary
// answers every request; the ones the shadow settings pick are also
// replayed to the shadow handler once the client has its answer, and the
// two answers compared (see mirror.hpp). WebSockets and relayed upgrades
// go to the primary alone.
#include "adapters/shadow/mirror.hpp"
#include "bridge/core/handler.hpp"

#include <memory>

namespace trestle::shadow {

class shadow_handler final : public handler {
public:
    shadow_handler(std::unique_ptr<handler> primary, std::unique_ptr<handler> shadow, std::shared_ptr<mirror> m)
        : primary_(std::move(primary)), shadow_(std::move(shadow)), mirror_(std::move(m)) {}

    duties duties_for(const net::request_head& head) const override;
    bool submit(std::shared_ptr<net::app_port> ex) override;
    bool submit_websocket(std::shared_ptr<net::ws_channel> ch) override { return primary_->submit_websocket(std::move(ch)); }
    boost::asio::awaitable<void> tunnel(std::shared_ptr<net::app_port> ex, net::upgraded_client& c) override {
        return primary_->tunnel(std::move(ex), c);
    }

    mirror& shadow_mirror() { return *mirror_; }

private:
    std::unique_ptr<handler> primary_;
    std::unique_ptr<handler> shadow_;   // after the mirror: replays hold the mirror, not this
    std::shared_ptr<mirror> mirror_;
};

} // namespace trestle::shadow
