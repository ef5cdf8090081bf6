#include "bridge/net/tls_io.hpp"

#include "bridge/net/tls_context.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>

namespace trestle::net {

namespace {

std::string subject_of(X509* cert) {
    std::string out;
    BIO* b = BIO_new(BIO_s_mem());
    if (!b) return out;
    if (X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        char* data = nullptr;
        long n = BIO_get_mem_data(b, &data);
        if (n > 0) out.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(b);
    return out;
}

} // namespace

tls_io::tls_io(std::shared_ptr<tls_context> ctx, int fd) : ctx_(std::move(ctx)), ssl_(SSL_new(ctx_->native())) {
    if (!ssl_ || SSL_set_fd(ssl_, fd) != 1) {
        failed_ = true;
        error_ = "could not set up TLS for the connection";
        return;
    }
    SSL_set_accept_state(ssl_);
}

tls_io::~tls_io() {
    if (ssl_) SSL_free(ssl_);   // the socket is the transport's: SSL_set_fd's BIO does not close it
}

tls_io::result tls_io::fail_or_wait(int ret, const char* what) {
    int e = SSL_get_error(ssl_, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ: return result::want_read;
    case SSL_ERROR_WANT_WRITE: return result::want_write;
    case SSL_ERROR_ZERO_RETURN: return result::closed;   // close_notify, or (IGNORE_UNEXPECTED_EOF) a bare FIN
    case SSL_ERROR_SYSCALL: {
        failed_ = true;
        int err = errno;
        ERR_clear_error();
        if (err == 0 || err == EPIPE || err == ECONNRESET) {
            error_ = std::string(what) + ": the client closed the connection";
            return err == 0 ? result::closed : result::failed;
        }
        error_ = std::string(what) + ": " + std::strerror(err);
        return result::failed;
    }
    default: {
        failed_ = true;
        unsigned long code = ERR_peek_last_error();
        int reason = ERR_GET_REASON(code);
        plain_http_ = reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST;
        const char* text = code ? ERR_reason_error_string(code) : nullptr;
        error_ = std::string(what) + ": " + (text ? text : "TLS error");
        ERR_clear_error();
        return result::failed;
    }
    }
}

tls_io::result tls_io::handshake() {
    if (failed_) return result::failed;
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    return r == 1 ? result::ok : fail_or_wait(r, "TLS handshake");
}

tls_io::result tls_io::read(void* p, std::size_t n, std::size_t& got) {
    if (failed_) return result::failed;
    ERR_clear_error();
    if (SSL_read_ex(ssl_, p, n, &got) == 1) return result::ok;
    return fail_or_wait(0, "TLS read");
}

tls_io::result tls_io::write(const void* p, std::size_t n, std::size_t& put) {
    put = 0;
    if (failed_) return result::failed;
    if (n == 0) return result::ok;
    ERR_clear_error();
    if (SSL_write_ex(ssl_, p, n, &put) == 1) return result::ok;
    return fail_or_wait(0, "TLS write");
}

tls_io::result tls_io::sendfile(int fd, off_t offset, std::size_t n, std::size_t& sent) {
    sent = 0;
    if (failed_) return result::failed;
    ERR_clear_error();
    ossl_ssize_t r = SSL_sendfile(ssl_, fd, offset, n, 0);
    if (r > 0) {
        sent = static_cast<std::size_t>(r);
        return result::ok;
    }
    if (r == 0) {   // the file shrank under us
        failed_ = true;
        error_ = "TLS sendfile: the file ended early";
        return result::failed;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        ERR_clear_error();
        return result::want_write;
    }
    return fail_or_wait(-1, "TLS sendfile");
}

bool tls_io::pending() const { return ssl_ && SSL_has_pending(ssl_) == 1; }

bool tls_io::ktls_send() const { return ssl_ && BIO_get_ktls_send(SSL_get_wbio(ssl_)); }

void tls_io::notify_close() {
    if (failed_ || close_sent_ || !ssl_ || !SSL_is_init_finished(ssl_)) return;
    close_sent_ = true;
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
}

std::string tls_io::alpn() const {
    const unsigned char* p = nullptr;
    unsigned n = 0;
    SSL_get0_alpn_selected(ssl_, &p, &n);
    return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

std::shared_ptr<const tls_info> tls_io::info() const {
    auto i = std::make_shared<tls_info>();
    i->version = SSL_get_version(ssl_);
    i->version_number = SSL_version(ssl_);
    if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_)) {
        i->cipher = SSL_CIPHER_get_name(c);
        i->cipher_id = SSL_CIPHER_get_protocol_id(c);
    }
    i->alpn = alpn();
    i->server_cert = ctx_->server_pem();
    if (X509* leaf = SSL_get1_peer_certificate(ssl_)) {
        i->client_chain.push_back(pem_of(leaf));
        i->client_name = subject_of(leaf);
        long v = SSL_get_verify_result(ssl_);
        if (v != X509_V_OK) i->client_error = X509_verify_cert_error_string(v);
        // On a server the peer's chain leaves out its own certificate.
        if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl_))
            for (int k = 0; k < sk_X509_num(chain); ++k) {
                X509* c = sk_X509_value(chain, k);
                if (X509_cmp(c, leaf) != 0) i->client_chain.push_back(pem_of(c));
            }
        X509_free(leaf);
    }
    return i;
}

} // namespace trestle::net
