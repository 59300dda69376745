// TLS contexts for both ends of a connection (proto-spec section
// "Transport"): TLS 1.2 at least, certificates verified.
#pragma once

#include <asio/ssl/context.hpp>

#include <filesystem>
#include <optional>

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

} // namespace cloudproto::tls
