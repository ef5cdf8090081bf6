#pragma once
// One TLS connection's OpenSSL state, on the connection's socket itself (no
// memory BIOs): every call is non-blocking and says whether it needs the
// socket readable or writable before it can go on. The transport
// (transport.hpp) turns that into Asio waits. Keeping OpenSSL on the socket
// lets the kernel take over the records (kTLS) where it can, so a file goes
// out with sendfile.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

typedef struct ssl_st SSL;

namespace trestle::net {

class tls_context;

// What a handshake settled, for the apps: WSGI's SSL_* variables and the
// ASGI "tls" extension.
struct tls_info {
    std::string version;                 // "TLSv1.3"
    int version_number = 0;              // 0x0304
    std::string cipher;                  // "TLS_AES_128_GCM_SHA256"
    int cipher_id = 0;                   // the IANA number
    std::string alpn;                    // "h2", "http/1.1" or ""
    std::string server_cert;             // PEM
    std::vector<std::string> client_chain;   // PEM, the client's own certificate first
    std::string client_name;             // its subject, RFC 4514; "" without one
    std::string client_error;            // why it did not verify; "" when it did or none came
};

class tls_io {
public:
    enum class result { ok, want_read, want_write, closed, failed };

    tls_io(std::shared_ptr<tls_context> ctx, int fd);
    ~tls_io();
    tls_io(const tls_io&) = delete;
    tls_io& operator=(const tls_io&) = delete;

    result handshake();
    // Reads up to `n` bytes of plaintext; `got` is set on ok.
    result read(void* p, std::size_t n, std::size_t& got);
    // Writes up to `n` bytes; `put` is set on ok. After want_read or
    // want_write the same bytes must be offered again (their address may
    // change).
    result write(const void* p, std::size_t n, std::size_t& put);
    // Sends part of a file through kernel TLS (only when ktls_send()).
    result sendfile(int fd, off_t offset, std::size_t n, std::size_t& sent);

    // Plaintext (or a record) OpenSSL holds that a read returns without the socket.
    bool pending() const;
    bool ktls_send() const;
    // Sends close_notify, once, if the connection is in a state to: never
    // waits, and a socket that will not take it now is not waited for.
    void notify_close();
    // The socket is closing: nothing may touch its descriptor any more
    // (the number may soon be another connection's).
    void detach() { failed_ = true; }
    // The last failure, one line; and whether the handshake failed because
    // the client spoke plain HTTP.
    const std::string& error() const { return error_; }
    bool plain_http() const { return plain_http_; }
    // After the handshake.
    std::shared_ptr<const tls_info> info() const;
    std::string alpn() const;

private:
    result fail_or_wait(int ret, const char* what);

    std::shared_ptr<tls_context> ctx_;
    SSL* ssl_;
    bool failed_ = false;
    bool close_sent_ = false;
    bool plain_http_ = false;
    std::string error_;
};

} // namespace trestle::net
