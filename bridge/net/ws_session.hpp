#pragma once
// Runs one accepted WebSocket upgrade on an io thread with Beast's websocket
// stream: waits for the app to accept or deny, performs the handshake, then
// moves frames both ways through the ws_channel until either side closes.
#include "bridge/net/ws_channel.hpp"

#include <boost/asio/awaitable.hpp>

namespace trestle::net {

struct server_context;
struct request_head;
class transport;

// RFC 6455 4.2.1: 0 if a WebSocket handshake request may be answered, else
// the status that refuses it (400 for a Sec-WebSocket-Key that is not the
// base64 of 16 bytes, 426 for a Sec-WebSocket-Version other than 13). Checked
// before the app hears of the connection.
unsigned websocket_handshake_status(const request_head& head);

boost::asio::awaitable<void> serve_websocket(transport& socket,
                                             std::shared_ptr<ws_channel> ch, const server_context& ctx,
                                             const bool& closed);

} // namespace trestle::net
