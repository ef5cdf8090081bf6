#pragma once
// The server side of TLS, set up once: an OpenSSL context built from
// --certfile, --keyfile and the other TLS flags, with safe defaults (TLS 1.2
// and 1.3 only, Mozilla's "intermediate" ciphers, no renegotiation, no
// 0-RTT, session resumption on), and ALPN. A tls_provider hands the current
// context to each new connection and replaces it on reload (SIGHUP), so
// connections already open keep the one they started with.
#include "bridge/config/options.hpp"

#include <memory>
#include <mutex>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct x509_st X509;

namespace trestle::net {

class tls_context {
public:
    // Builds a context from the files the options name. Null, with `why`
    // set to one line naming the flag and the cause, when a file is missing
    // or unreadable, a key does not match its certificate, and so on.
    static std::shared_ptr<tls_context> load(const tls_options& o, std::string& why);
    ~tls_context();
    tls_context(const tls_context&) = delete;
    tls_context& operator=(const tls_context&) = delete;

    SSL_CTX* native() const { return ctx_; }
    // The certificate it presents, PEM (the ASGI tls extension's server_cert).
    const std::string& server_pem() const { return server_pem_; }

private:
    explicit tls_context(SSL_CTX* ctx) : ctx_(ctx) {}
    SSL_CTX* ctx_;
    std::string server_pem_;
};

class tls_provider {
public:
    tls_provider(tls_options o, std::shared_ptr<tls_context> first) : opts_(std::move(o)), current_(std::move(first)) {}
    std::shared_ptr<tls_context> current() const {
        std::lock_guard lock(mu_);
        return current_;
    }
    // Reads the files again. On failure the old context stays, and `why`
    // says what was wrong.
    bool reload(std::string& why);

private:
    tls_options opts_;
    mutable std::mutex mu_;
    std::shared_ptr<tls_context> current_;
};

// Session tickets encrypted with keys that every worker process shares, so
// that a client resumes its session whichever worker takes its next
// connection. Called once in the process that forks the workers, before any
// context is built; without it each process makes keys of its own.
void make_shared_ticket_keys();

// A certificate in PEM; "" if it cannot be written.
std::string pem_of(X509* cert);

// Whether the kernel can take over TLS records (kTLS), so that a file goes
// out with sendfile: "" when it can, else why not (one line). Probed once
// per process.
std::string kernel_tls_unavailable();

} // namespace trestle::net
