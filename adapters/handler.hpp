#pragma once
// The small interface every kind of handler implements (WSGI now; ASGI,
// static files and proxies share it). A connection builds an exchange and
// submits it; the handler answers through the exchange.
#include <boost/asio/awaitable.hpp>

#include <memory>

namespace trestle::net { class exchange; class ws_channel; struct request_head; struct upgraded_client; }

namespace trestle {

class handler {
public:
    virtual ~handler() = default;
    // Called on an io thread. Returns false when the handler cannot take the
    // request now (its queue is full); the connection then answers 503.
    virtual bool submit(std::shared_ptr<net::exchange> ex) = 0;

    // Whether the connection should watch an idle socket while the app
    // runs and abort the exchange when the client leaves (apps on the
    // event loop, which can react; a blocked WSGI thread could not).
    virtual bool watches_disconnect(const net::request_head&) const { return false; }

    // Whether the connection should gather the whole request body (memory,
    // then a temporary file) before it submits the request: apps that hold
    // a pool thread while they read (WSGI), so a slow upload cannot hold one.
    virtual bool buffers_body(const net::request_head&) const { return false; }

    // WebSocket upgrades. A handler that does not take them (WSGI) makes
    // the connection answer 400 to the handshake.
    virtual bool accepts_websocket(const net::request_head&) const { return false; }
    virtual void submit_websocket(std::shared_ptr<net::ws_channel>) {}

    // Upgrades relayed as bytes (a proxy mount tunnels a WebSocket to its
    // upstream) instead of spoken by the connection. The handshake is
    // submitted like any request. When the handler answers it 101 (status
    // set, finished with keep-alive), the connection then always awaits
    // tunnel() with its socket, having aborted the exchange if it cannot go
    // on; tunnel() moves bytes until either side closes, and the connection
    // closes after it.
    virtual bool tunnels_upgrade(const net::request_head&) const { return false; }
    virtual boost::asio::awaitable<void> tunnel(std::shared_ptr<net::exchange>, net::upgraded_client&) { co_return; }
};

} // namespace trestle
