#include "cloudproto/tls.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <memory>

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

// OpenSSL takes a file's name as chars: UTF-8 on Windows, where a
// path's own are wide; the same bytes elsewhere.
std::string file_name(const std::filesystem::path& path) {
    const auto utf8 = path.u8string();
    return {utf8.begin(), utf8.end()};
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

// Lets a handshake finish whatever the other end's certificate; the
// verdict stays readable in SSL_get_verify_result for the caller.
int judge_later(int, X509_STORE_CTX*) {
    return 1;
}

void load_authority(SSL_CTX* native, const std::filesystem::path& authority) {
    if (authority.empty())
        return;
    const std::string name = file_name(authority);
    if (SSL_CTX_load_verify_locations(native, name.c_str(), nullptr) != 1)
        throw std::runtime_error(
            fmt::format("cannot load certificate authority {}: {}", name,
                        openssl_reason()));
}

void use_certificate_and_key(SSL_CTX* native,
                             const std::filesystem::path& cert,
                             const std::filesystem::path& key) {
    const std::string cert_name = file_name(cert);
    if (SSL_CTX_use_certificate_chain_file(native, cert_name.c_str()) != 1)
        throw std::runtime_error(fmt::format("cannot use certificate {}: {}",
                                             cert_name, openssl_reason()));
    const std::string key_name = file_name(key);
    if (SSL_CTX_use_PrivateKey_file(native, key_name.c_str(),
                                    SSL_FILETYPE_PEM) != 1)
        throw std::runtime_error(fmt::format("cannot use private key {}: {}",
                                             key_name, openssl_reason()));
}

std::string hex(const unsigned char* bytes, unsigned int n) {
    std::string out;
    for (unsigned int i = 0; i < n; ++i)
        out += fmt::format("{:02x}", bytes[i]);
    return out;
}

std::vector<std::string> certificate_names(X509* cert) {
    std::vector<std::string> names;
    using Names = std::unique_ptr<GENERAL_NAMES, void (*)(GENERAL_NAMES*)>;
    Names sans(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(
                   cert, NID_subject_alt_name, nullptr, nullptr)),
               GENERAL_NAMES_free);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans.get(), i);
        if (n->type != GEN_DNS)
            continue;
        const ASN1_IA5STRING* s = n->d.dNSName;
        names.emplace_back(reinterpret_cast<const char*>(s->data),
                           static_cast<std::size_t>(s->length));
    }
    if (!names.empty())
        return names;

    // No DNS name: the subject's common name stands for it.
    X509_NAME* subject = X509_get_subject_name(cert);
    int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at >= 0) {
        ASN1_STRING* cn =
            X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
        names.emplace_back(
            reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
            static_cast<std::size_t>(ASN1_STRING_length(cn)));
    }
    return names;
}

} // namespace

void ask_for_peer_certificates(asio::ssl::context& server,
                               const std::filesystem::path& authority) {
    SSL_CTX* native = server.native_handle();
    load_authority(native, authority);
    if (!authority.empty()) {
        // Tells a client which authority's certificate to present.
        const std::string name = file_name(authority);
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(name.c_str());
        if (names)
            SSL_CTX_set_client_CA_list(native, names);
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, judge_later);
}

asio::ssl::context
make_peer_client_context(const std::filesystem::path& cert,
                         const std::filesystem::path& key,
                         const std::filesystem::path& authority) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    harden(ctx);
    SSL_CTX* native = ctx.native_handle();
    use_certificate_and_key(native, cert, key);
    load_authority(native, authority);
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, judge_later);
    return ctx;
}

PeerCertificate peer_certificate(SSL* ssl) {
    PeerCertificate pc;
    if (!ssl)
        return pc;
    using Cert = std::unique_ptr<X509, void (*)(X509*)>;
    Cert cert(SSL_get1_peer_certificate(ssl), X509_free);
    if (!cert)
        return pc;
    pc.present = true;
    pc.chain_verified = SSL_get_verify_result(ssl) == X509_V_OK;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (X509_digest(cert.get(), EVP_sha256(), md, &n) == 1)
        pc.sha256 = hex(md, n);
    pc.names = certificate_names(cert.get());
    return pc;
}

asio::ssl::context make_server_context(const std::filesystem::path& cert,
                                       const std::filesystem::path& key) {
    asio::ssl::context ctx(asio::ssl::context::tls_server);
    harden(ctx);
    SSL_CTX* native = ctx.native_handle();
    use_certificate_and_key(native, cert, key);
    if (SSL_CTX_check_private_key(native) != 1)
        throw std::runtime_error(
            fmt::format("private key {} does not match certificate {}",
                        file_name(key), file_name(cert)));
    return ctx;
}

asio::ssl::context
make_client_context(const std::optional<std::filesystem::path>& ca_file) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    harden(ctx);
    SSL_CTX* native = ctx.native_handle();
    if (ca_file) {
        const std::string name = file_name(*ca_file);
        if (SSL_CTX_load_verify_locations(native, name.c_str(), nullptr) != 1)
            throw std::runtime_error(
                fmt::format("cannot load certificate authority {}: {}", name,
                            openssl_reason()));
    } else {
        SSL_CTX_set_default_verify_paths(native);
    }
    ctx.set_verify_mode(asio::ssl::verify_peer);
    return ctx;
}

} // namespace cloudproto::tls
