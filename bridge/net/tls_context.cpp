#include "bridge/net/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace trestle::net {

std::string probe_kernel_tls();

namespace {

// Mozilla's "intermediate" configuration (version 5.7): the TLS 1.2 suites.
// TLS 1.3's suites are OpenSSL's defaults, all of them strong.
constexpr const char* intermediate_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
constexpr const char* intermediate_groups = "X25519:P-256:P-384";

// 16 bytes of key name, 32 of HMAC secret, 32 of AES key (OpenSSL's layout).
unsigned char ticket_keys[80];
bool ticket_keys_made = false;

// The newest OpenSSL error as one line, emptying the queue.
std::string openssl_error() {
    unsigned long e = 0, last = 0;
    while ((e = ERR_get_error()) != 0) last = e;
    if (last == 0) return "unknown OpenSSL error";
    const char* reason = ERR_reason_error_string(last);
    return reason ? reason : "OpenSSL error " + std::to_string(last);
}

// A clear message for a file OpenSSL could not use: the system's reason
// when the file cannot be opened at all.
std::string file_problem(const std::string& flag, const std::string& path) {
    if (::access(path.c_str(), R_OK) != 0) return flag + " " + path + ": " + std::strerror(errno);
    return flag + " " + path + ": " + openssl_error();
}

// Never prompts on the terminal for a key's passphrase (OpenSSL's default):
// an encrypted key fails to load, with a clear message.
int no_passphrase(char*, int, int, void*) { return 0; }

// ALPN: "h2" when the client offers it and HTTP/2 is on, else "http/1.1";
// a client that offers neither gets no protocol chosen, and speaks HTTP/1.1.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void* arg) {
    bool h2 = arg != nullptr;
    const unsigned char* http11 = nullptr;
    for (unsigned i = 0; i < inlen;) {
        unsigned len = in[i];
        const unsigned char* name = in + i + 1;
        if (i + 1 + len > inlen) break;
        if (h2 && len == 2 && std::memcmp(name, "h2", 2) == 0) {
            *out = name;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        if (len == 8 && std::memcmp(name, "http/1.1", 8) == 0) http11 = name;
        i += 1 + len;
    }
    if (!http11) return SSL_TLSEXT_ERR_NOACK;
    *out = http11;
    *outlen = 8;
    return SSL_TLSEXT_ERR_OK;
}

bool configure(SSL_CTX* ctx, const tls_options& o, std::string& why) {
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    int min = o.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, min);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // Kernel TLS only where the kernel has it: each attempt where it has
    // not is a failing setsockopt(TCP_ULP) per connection and direction,
    // which makes the kernel try to load the module (a modprobe) every
    // time: it halved the handshake rate here.
    if (kernel_tls_unavailable().empty()) SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
    // Partial writes let a response go out record by record as the socket
    // takes it; the buffer of a write retried after WANT_WRITE may have
    // moved (a std::string that grew). Idle connections give their 34 KiB
    // of record buffers back, as nginx's do.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    // One recv takes what has arrived, not a record header and then its body.
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_max_early_data(ctx, 0);   // no 0-RTT: replayable requests
    if (!SSL_CTX_set_cipher_list(ctx, o.ciphers.empty() ? intermediate_ciphers : o.ciphers.c_str())) {
        why = "--ciphers '" + o.ciphers + "': no cipher OpenSSL knows";
        return false;
    }
    if (!SSL_CTX_set1_groups_list(ctx, intermediate_groups)) {
        why = "TLS groups: " + openssl_error();
        return false;
    }
    SSL_CTX_set_dh_auto(ctx, 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, o.certfile.c_str()) != 1) {
        why = file_problem("--certfile", o.certfile);
        return false;
    }
    const std::string& key = o.keyfile.empty() ? o.certfile : o.keyfile;
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
        why = file_problem(o.keyfile.empty() ? "--certfile (no --keyfile)" : "--keyfile", key);
        if (why.ends_with("key values mismatch")) why = "--keyfile " + key + " does not match --certfile " + o.certfile;
        if (why.find("bad decrypt") != std::string::npos || why.find("bad password") != std::string::npos)
            why += " (the key is encrypted: give an unencrypted one)";
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        why = "--keyfile " + key + " does not match --certfile " + o.certfile;
        return false;
    }
    if (!o.ca_certs.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, o.ca_certs.c_str(), nullptr) != 1) {
            why = file_problem("--ca-certs", o.ca_certs);
            return false;
        }
        if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_certs.c_str())) SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (o.cert_reqs > 0) {
        int mode = SSL_VERIFY_PEER | (o.cert_reqs == 2 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
        SSL_CTX_set_verify(ctx, mode, nullptr);
    }
    // Resumption: the session cache (TLS 1.2 session ids) and tickets. With
    // client certificates a resumed session must belong to this server.
    static const unsigned char sid_ctx[] = "trestle";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20480);
    if (ticket_keys_made) SSL_CTX_set_tlsext_ticket_keys(ctx, ticket_keys, sizeof ticket_keys);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, o.h2 ? reinterpret_cast<void*>(1) : nullptr);
    return true;
}

} // namespace

std::string pem_of(X509* cert) {
    std::string out;
    BIO* b = BIO_new(BIO_s_mem());
    if (!b) return out;
    if (PEM_write_bio_X509(b, cert) == 1) {
        char* data = nullptr;
        long n = BIO_get_mem_data(b, &data);
        if (n > 0) out.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(b);
    return out;
}

std::shared_ptr<tls_context> tls_context::load(const tls_options& o, std::string& why) {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        why = "TLS: " + openssl_error();
        return nullptr;
    }
    if (!configure(ctx, o, why)) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return nullptr;
    }
    std::shared_ptr<tls_context> made(new tls_context(ctx));
    if (X509* cert = SSL_CTX_get0_certificate(ctx)) made->server_pem_ = pem_of(cert);
    return made;
}

tls_context::~tls_context() { SSL_CTX_free(ctx_); }

bool tls_provider::reload(std::string& why) {
    auto fresh = tls_context::load(opts_, why);
    if (!fresh) return false;
    std::lock_guard lock(mu_);
    current_ = std::move(fresh);
    return true;
}

void make_shared_ticket_keys() {
    if (RAND_bytes(ticket_keys, sizeof ticket_keys) == 1) ticket_keys_made = true;
}

std::string kernel_tls_unavailable() {
    static const std::string why = probe_kernel_tls();
    return why;
}

std::string probe_kernel_tls() {
    // The kernel's TLS layer is attached to a connected TCP socket: make a
    // loopback pair and try.
    int lst = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int cli = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    std::string why;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (lst < 0 || cli < 0 || ::bind(lst, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lst, 1) != 0 ||
        ::getsockname(lst, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
        ::connect(cli, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        why = std::string("could not test it: ") + std::strerror(errno);
    } else if (::setsockopt(cli, SOL_TCP, TCP_ULP, "tls", 3) != 0) {
        why = std::string("the kernel has no TLS layer (setsockopt TCP_ULP tls: ") + std::strerror(errno) + ")";
    }
    if (lst >= 0) ::close(lst);
    if (cli >= 0) ::close(cli);
    return why;
}

} // namespace trestle::net
