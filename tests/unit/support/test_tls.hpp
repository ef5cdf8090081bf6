#pragma once
// TLS for unit tests: a self-signed certificate and key made in memory
// (P-256, CN=localhost) and written to a temporary directory, and a client
// that runs OpenSSL over one end of a socket pair, blocking, on a thread
// of its own.
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace trestle::testing {

struct test_pki {
    std::string dir, cert, key, other_key;

    test_pki() {
        char tmpl[] = "/tmp/trestle-tls-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
        dir = tmpl;
        cert = dir + "/cert.pem";
        key = dir + "/key.pem";
        other_key = dir + "/other-key.pem";
        EVP_PKEY* k = EVP_EC_gen("P-256");
        EVP_PKEY* other = EVP_EC_gen("P-256");
        X509* x = X509_new();
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, k);
        X509_NAME* n = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
        X509_set_issuer_name(x, n);
        X509_sign(x, k, EVP_sha256());
        write(cert, [&](FILE* f) { return PEM_write_X509(f, x); });
        write(key, [&](FILE* f) { return PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr); });
        write(other_key, [&](FILE* f) { return PEM_write_PrivateKey(f, other, nullptr, nullptr, 0, nullptr, nullptr); });
        X509_free(x);
        EVP_PKEY_free(k);
        EVP_PKEY_free(other);
    }
    ~test_pki() {
        ::unlink(cert.c_str());
        ::unlink(key.c_str());
        ::unlink(other_key.c_str());
        ::rmdir(dir.c_str());
    }

private:
    template <class Fn>
    static void write(const std::string& path, Fn fn) {
        FILE* f = std::fopen(path.c_str(), "w");
        if (!f || fn(f) != 1) throw std::runtime_error("cannot write " + path);
        std::fclose(f);
    }
};

// A blocking TLS client on a descriptor. Not verifying: the tests check the
// server's side, not the certificate's.
class tls_client {
public:
    explicit tls_client(int fd, const char* alpn = nullptr) : ctx_(SSL_CTX_new(TLS_client_method())) {
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
        ssl_ = SSL_new(ctx_);
        SSL_set_fd(ssl_, fd);
        if (alpn) {
            std::string wire;
            for (std::string_view s(alpn); !s.empty();) {
                auto comma = s.find(',');
                std::string_view one = s.substr(0, comma);
                wire += static_cast<char>(one.size());
                wire += one;
                s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
            }
            SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
        }
    }
    ~tls_client() {
        SSL_free(ssl_);
        SSL_CTX_free(ctx_);
    }
    bool handshake() { return SSL_connect(ssl_) == 1; }
    std::string alpn() const {
        const unsigned char* p = nullptr;
        unsigned n = 0;
        SSL_get0_alpn_selected(ssl_, &p, &n);
        return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
    }
    bool write(const std::string& s) { return SSL_write(ssl_, s.data(), static_cast<int>(s.size())) == static_cast<int>(s.size()); }
    // Reads exactly n bytes (or fewer at the end of the stream).
    std::string read(std::size_t n) {
        std::string out(n, '\0');
        std::size_t got = 0;
        while (got < n) {
            int r = SSL_read(ssl_, out.data() + got, static_cast<int>(n - got));
            if (r <= 0) break;
            got += static_cast<std::size_t>(r);
        }
        out.resize(got);
        return out;
    }
    void close_notify() { SSL_shutdown(ssl_); }

private:
    SSL_CTX* ctx_;
    SSL* ssl_ = nullptr;
};

} // namespace trestle::testing
