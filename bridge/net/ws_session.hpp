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
class h2_stream_io;

// RFC 6455 4.2.1: 0 if a WebSocket handshake request may be answered, else
// the status that refuses it (400 for a Sec-WebSocket-Key that is not the
// base64 of 16 bytes, 426 for a Sec-WebSocket-Version other than 13). Checked
// before the app hears of the connection.
unsigned websocket_handshake_status(const request_head& head);
// The same for an extended CONNECT over HTTP/2 (RFC 8441), which has no key.
unsigned h2_websocket_status(const request_head& head);

// The HTTP/1.1 response that denies a handshake (the app's status, fields
// and body, or 403).
std::string websocket_denial(const ws_command& c, const server_context& ctx);

boost::asio::awaitable<void> serve_websocket(transport& socket,
                                             std::shared_ptr<ws_channel> ch, const server_context& ctx,
                                             const bool& closed);
// Over an HTTP/2 stream: the answer goes out through the stream's link
// (HEADERS), then the frames as DATA; the stream ends when this returns.
boost::asio::awaitable<void> serve_websocket(h2_stream_io& stream, std::shared_ptr<ws_channel> ch,
                                             const server_context& ctx);

} // namespace trestle::net
