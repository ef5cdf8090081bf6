#pragma once
// The contract between a connection (bridge/net) and what answers its
// requests (adapters/: WSGI, ASGI, static files, proxies). A connection asks
// the router once per request for a route: the handler, and what the
// connection must do around it. It then builds an exchange and submits its
// app side (net::app_port); the handler answers through that port and knows
// nothing of the socket or of the protocol.
//
// Every adapter implements the same two calls (duties, submit); the ones that
// take WebSockets or relay upgrades add the call for that. Every adapter is
// built by a make_handler(mount spec, shared services) function of its own
// (adapters/*/make.hpp), and finds its mount prefix already split off the
// request's decoded path (request_head::routed).
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>

namespace trestle::net { class app_port; class ws_channel; struct request_head; struct upgraded_client; }

namespace trestle {

// What a connection does around one request, as its handler needs it.
struct duties {
    // Watch the socket while the app runs and abort the exchange when the
    // client leaves (apps on the event loop, which can react; a blocked WSGI
    // thread could not).
    bool watch_disconnect = false;
    // Gather the whole body (memory, then a temporary file) before the
    // request is submitted: apps that hold a pool thread while they read
    // (WSGI), so that a slow upload cannot hold one.
    bool buffer_body = false;
    // A WebSocket handshake is spoken by the connection and handed over with
    // submit_websocket. Without it the handshake is answered 400.
    bool websocket = false;
    // An upgrade relayed as bytes (a proxy mount tunnels a WebSocket to its
    // upstream): the handshake is submitted like any request; when the
    // handler answers it 101 (finished with keep-alive), the connection then
    // awaits tunnel() with its socket, having aborted the exchange if it
    // cannot go on, and closes after it.
    bool tunnel_upgrade = false;
};

class handler {
public:
    virtual ~handler() = default;

    // Once per request, on an io thread, before anything else is done with it.
    virtual duties duties_for(const net::request_head& head) const = 0;

    // On an io thread. False refuses the request now (the handler is full):
    // the connection answers 503 with Retry-After. True: the handler owns the
    // exchange's app side until it finishes or the exchange is aborted.
    virtual bool submit(std::shared_ptr<net::app_port> ex) = 0;

    // For duties::websocket. False refuses it like submit.
    virtual bool submit_websocket(std::shared_ptr<net::ws_channel>) { return false; }

    // For duties::tunnel_upgrade: moves bytes until either side closes.
    virtual boost::asio::awaitable<void> tunnel(std::shared_ptr<net::app_port>, net::upgraded_client&) { co_return; }
};

// What the router hands the connection for one request.
struct route {
    handler* target = nullptr;
    struct duties duties;
    std::uint16_t mount = 0;   // the mount's number in the metrics (0: no mount took it)
};

} // namespace trestle
