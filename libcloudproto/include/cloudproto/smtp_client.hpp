// The node's SMTP client (RFC 5321), on the same line and TLS layer as
// the protocol: one message per connection, STARTTLS (RFC 3207) or
// implicit TLS (RFC 8314), AUTH PLAIN and LOGIN (RFC 4954).
#pragma once

#include "cloudproto/smtp_wire.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ssl/context.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace cloudproto::smtp {

enum class Security {
    starttls, // plain TCP, then STARTTLS, which the server must offer
    tls,      // TLS from the first byte (port 465)
    none,     // no TLS at all: for a server on loopback only
};

struct Settings {
    std::string host;
    std::string port;
    Security security = Security::starttls;
    // Verifies the server (starttls, tls); its certificate must carry
    // `server_name`.
    asio::ssl::context* tls = nullptr;
    std::string server_name;
    std::string helo_name;
    // AUTH when `username` is set; only over TLS unless allowed here.
    std::string username;
    std::string password;
    bool allow_plaintext_auth = false;
    std::chrono::seconds timeout{60}; // for each reply
};

struct Envelope {
    std::string from;
    std::string to;
};

struct Outcome {
    enum class Kind { delivered, tempfail, permfail };
    Kind kind = Kind::tempfail;
    std::string step;   // where it ended: "connect", "EHLO", "RCPT", ...
    std::string detail; // the server's reply, or what went wrong
};
std::string_view to_string(Outcome::Kind kind);

// Delivers `message` (an RFC 5322 message with CRLF line ends) to the
// server. A 5xx at any step is permfail; a 4xx, a lost connection, a
// timeout, a TLS failure or a missing STARTTLS are tempfail.
asio::awaitable<Outcome> send_mail(asio::any_io_executor executor,
                                   const Settings& settings,
                                   const Envelope& envelope,
                                   std::string_view message);

} // namespace cloudproto::smtp
