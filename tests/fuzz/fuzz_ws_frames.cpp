// WebSocket frames from a client -> the server-side frame reader, set up as
// bridge/net/ws_session sets it up (message size limit, no automatic
// fragmentation, no compression), after a valid opening handshake. The
// input is what the client sends after the handshake; every message is read
// until the stream fails or closes. Crashes, sanitizer findings and a
// message above the size limit are failures.
#include "tests/fuzz/common.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <string>

namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using local = asio::local::stream_protocol;

namespace {
constexpr std::size_t max_message = 4096;
const std::string handshake =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 64 * 1024) return 0;   // fits the socket buffer: no writer thread needed
    asio::io_context ioc;
    local::socket client(ioc), server(ioc);
    asio::local::connect_pair(client, server);
    std::string bytes = handshake;
    bytes.append(reinterpret_cast<const char*>(data), size);
    boost::system::error_code ec;
    asio::write(client, asio::buffer(bytes), ec);
    FUZZ_CHECK(!ec);
    client.shutdown(local::socket::shutdown_send, ec);

    websocket::stream<local::socket&> ws(server);
    ws.read_message_max(max_message);
    ws.auto_fragment(false);
    ws.accept(ec);
    FUZZ_CHECK(!ec);
    // The server's own frames (pongs, the close) go to the client's receive
    // buffer; drain it as we go so it never fills.
    char sink[65536];
    for (int messages = 0; messages < 1000; ++messages) {
        boost::beast::flat_buffer buf;
        boost::system::error_code read_ec, drain_ec;
        ws.read(buf, read_ec);
        while (client.available(drain_ec) > 0 && !drain_ec) client.read_some(asio::buffer(sink), drain_ec);
        if (read_ec) break;   // a protocol error, the close, or the end of the input
        FUZZ_CHECK(buf.size() <= max_message);
    }
    return 0;
}
