#include "cloudproto/tls.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdexcept>

namespace cloudproto::tls {

namespace {

std::string openssl_reason() {
    unsigned long code = ERR_get_error();
    if (code == 0)
        return "unknown error";
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

// Settings both ends share: no protocol older than TLS 1.2, no
// renegotiation, no compression.
void harden(asio::ssl::context& ctx) {
    SSL_CTX* native = ctx.native_handle();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION |
                                    SSL_OP_NO_RENEGOTIATION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE);
}

} // namespace

asio::ssl::context make_server_context(const std::filesystem::path& cert,
                                       const std::filesystem::path& key) {
    asio::ssl::context ctx(asio::ssl::context::tls_server);
    harden(ctx);
    SSL_CTX* native = ctx.native_handle();
    if (SSL_CTX_use_certificate_chain_file(native, cert.c_str()) != 1)
        throw std::runtime_error(fmt::format(
            "cannot use certificate {}: {}", cert.string(), openssl_reason()));
    if (SSL_CTX_use_PrivateKey_file(native, key.c_str(), SSL_FILETYPE_PEM) !=
        1)
        throw std::runtime_error(fmt::format(
            "cannot use private key {}: {}", key.string(), openssl_reason()));
    if (SSL_CTX_check_private_key(native) != 1)
        throw std::runtime_error(
            fmt::format("private key {} does not match certificate {}",
                        key.string(), cert.string()));
    return ctx;
}

asio::ssl::context
make_client_context(const std::optional<std::filesystem::path>& ca_file) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    harden(ctx);
    SSL_CTX* native = ctx.native_handle();
    if (ca_file) {
        if (SSL_CTX_load_verify_locations(native, ca_file->c_str(),
                                          nullptr) != 1)
            throw std::runtime_error(
                fmt::format("cannot load certificate authority {}: {}",
                            ca_file->string(), openssl_reason()));
    } else {
        SSL_CTX_set_default_verify_paths(native);
    }
    ctx.set_verify_mode(asio::ssl::verify_peer);
    return ctx;
}

} // namespace cloudproto::tls
