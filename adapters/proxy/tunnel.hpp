#pragma once
// Upgraded connections (a WebSocket through a proxy mount): after the
// upstream's 101 has been relayed, bytes are spliced both ways until either
// side closes or nothing moves for the idle timeout.
#include "bridge/net/session.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace trestle::proxy {

// The upstream end of a switched connection, with the bytes it sent after
// its 101 head.
struct upgraded_upstream {
    boost::asio::ip::tcp::socket socket;
    std::string early;
};

// Between the 101 (relayed by the request's call) and the connection's
// handler::tunnel() call, on the same io thread, the upstream end waits
// here, keyed by the exchange.
void stash_upgrade(const net::app_port* ex, upgraded_upstream up);
std::optional<upgraded_upstream> claim_upgrade(const net::app_port* ex);

// Splices until both directions have ended (an end of stream is passed on
// as a half-close), either side fails, or `idle` passes with no byte moved.
boost::asio::awaitable<void> splice(net::upgraded_client& client, upgraded_upstream up,
                                    std::chrono::milliseconds idle);

} // namespace trestle::proxy
