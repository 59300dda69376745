// TLS contexts for both ends of a connection (proto-spec section
// "Transport"): TLS 1.2 at least, certificates verified.
#pragma once

#include <asio/ssl/context.hpp>

#include <openssl/ssl.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cloudproto::tls {

// A server's context from a PEM certificate chain and its private key.
// Throws std::runtime_error naming the file when either is unusable.
asio::ssl::context make_server_context(const std::filesystem::path& cert,
                                       const std::filesystem::path& key);

// A client's context that verifies the server against `ca_file`, or the
// system's authorities when none is given. The host name is checked by
// the connection (see Transport::client_handshake).
asio::ssl::context
make_client_context(const std::optional<std::filesystem::path>& ca_file);

// Peers (proto-spec "Peers and trust"). The server context asks every
// client for a certificate without requiring one (customers have none),
// and lets the handshake finish whatever the certificate: the session
// judges it afterwards with peer_certificate(). `authority` (may be
// empty: peers are pinned) is what peers' chains are checked against.
void ask_for_peer_certificates(asio::ssl::context& server,
                               const std::filesystem::path& authority);

// The context of a node's links to its peers: presents the node's own
// certificate, and lets the handshake finish so that the link judges the
// peer's certificate with peer_certificate().
asio::ssl::context
make_peer_client_context(const std::filesystem::path& cert,
                         const std::filesystem::path& key,
                         const std::filesystem::path& authority);

// What the other end of a finished handshake proved.
struct PeerCertificate {
    bool present = false;
    bool chain_verified = false; // chains to the authority loaded
    std::string sha256;          // of the DER, lower-case hex
    std::vector<std::string> names; // DNS subjectAltNames, else the CN
};
PeerCertificate peer_certificate(SSL* ssl);

} // namespace cloudproto::tls
