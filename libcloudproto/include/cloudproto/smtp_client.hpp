// The node's SMTP client (RFC 5321), on the same line and TLS layer as
// the protocol: one message per connection, STARTTLS (RFC 3207) or
// implicit TLS (RFC 8314), AUTH PLAIN and LOGIN (RFC 4954).
#pragma once

#include "cloudproto/smtp_wire.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/address.hpp>
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
    // EHLO's argument; empty: the address literal of the connection's
    // local end, as RFC 5321 4.1.3 allows a client without a domain.
    std::string helo_name;
    // AUTH when `username` is set; only over TLS unless allowed here.
    std::string username;
    std::string password;
    bool allow_plaintext_auth = false;
    // For each reply, RFC 5321 4.5.3.2's five minutes by default.
    std::chrono::seconds timeout{300};
    // For the reply after the message's final dot: the server may still
    // be taking the message, and a client that gives up then sends it
    // twice (RFC 5321 4.5.3.2.6 and 6.1).
    std::chrono::seconds data_timeout{600};
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
// timeout, a TLS failure or a missing STARTTLS are tempfail. Whenever
// the server can still take a command, the session ends with QUIT.
asio::awaitable<Outcome> send_mail(asio::any_io_executor executor,
                                   const Settings& settings,
                                   const Envelope& envelope,
                                   std::string_view message);

// What AUTH sends (RFC 4954): PLAIN's initial response is NUL, user
// name, NUL, password in base64 (RFC 4616); LOGIN answers each of its
// two prompts with one of them in base64.
std::string auth_plain_response(std::string_view username,
                                std::string_view password);
std::string auth_login_response(std::string_view text);

// "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3).
std::string address_literal(const asio::ip::address& address);

} // namespace cloudproto::smtp
