#include "cloudproto/smtp_client.hpp"

#include "cloudproto/connection.hpp"
#include "cloudproto/log.hpp"
#include "cloudproto/reply.hpp"

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <optional>

namespace cloudproto::smtp {

namespace {

// How long the server may take to answer QUIT and to close: nothing is
// left to lose by then.
constexpr std::chrono::seconds quit_timeout{5};

std::string base64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(bytes.data()),
                        static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(std::max(n, 0)));
    return out;
}

std::string reply_text(const Reply& r) {
    std::string text = std::to_string(r.code);
    for (const auto& line : r.lines)
        text += ' ' + line;
    return text;
}

// One mail transaction on one connection. Each step returns nullopt to
// go on, or the outcome that ends the transaction.
class Transaction {
public:
    Transaction(asio::any_io_executor executor, const Settings& settings)
        : executor_(std::move(executor)), s_(settings) {}

    ~Transaction() {
        if (connection_)
            connection_->close();
    }

    asio::awaitable<Outcome> run(const Envelope& envelope,
                                 std::string_view message) {
        using Step = std::optional<Outcome>;
        Step end = co_await connect();
        if (!end)
            end = co_await greeting();
        if (!end)
            end = co_await hello();
        if (!end && s_.security == Security::starttls)
            end = co_await start_tls();
        if (!end && !s_.username.empty())
            end = co_await authenticate();
        if (!end)
            end = co_await transfer(envelope, message);

        // A polite end whenever the server still listens (RFC 5321 4.1.1.10)
        if (connection_ && !broken_)
            co_await quit();
        co_return *end;
    }

private:
    using Step = std::optional<Outcome>;

    static Outcome outcome(Outcome::Kind kind, std::string step,
                           std::string detail) {
        return {kind, std::move(step), std::move(detail)};
    }

    // A reply other than the one wanted: 4xx may pass, 5xx will not.
    // After 421 the server closes (RFC 5321 3.8): no QUIT.
    Outcome refused(std::string step, const Reply& r) {
        broken_ = r.code == 421;
        auto kind =
            r.code >= 500 ? Outcome::Kind::permfail : Outcome::Kind::tempfail;
        return outcome(kind, std::move(step), reply_text(r));
    }

    // No reply, or none that can be read: the session is over.
    Outcome lost(std::string step) {
        broken_ = true;
        return outcome(Outcome::Kind::tempfail, std::move(step), error_);
    }

    Outcome tls_failed(const std::error_code& ec) {
        broken_ = true;
        return outcome(Outcome::Kind::tempfail, "tls",
                       "TLS handshake failed: " + ec.message());
    }

    asio::awaitable<Step> connect() {
        using tcp = asio::ip::tcp;
        std::error_code ec;
        auto token = asio::redirect_error(asio::use_awaitable, ec);
        tcp::resolver resolver(executor_);
        auto endpoints =
            co_await resolver.async_resolve(s_.host, s_.port, token);
        tcp::socket socket(executor_);
        if (!ec)
            co_await asio::async_connect(socket, endpoints, token);
        if (ec)
            co_return outcome(
                Outcome::Kind::tempfail, "connect",
                fmt::format("{}:{}: {}", s_.host, s_.port, ec.message()));
        socket.set_option(tcp::no_delay(true), ec);
        auto local = socket.local_endpoint(ec);
        if (!ec)
            local_address_ = local.address();

        if (s_.security == Security::tls) {
            connection_ = std::make_shared<Connection>(
                std::move(socket), *s_.tls, max_reply_line_bytes);
        } else {
            connection_ = std::make_shared<Connection>(std::move(socket),
                                                       max_reply_line_bytes);
        }
        connection_->arm(s_.timeout);
        auto hs = co_await connection_->client_handshake(s_.server_name);
        if (hs)
            co_return tls_failed(hs);
        co_return std::nullopt;
    }

    asio::awaitable<Step> greeting() {
        auto r = co_await read_reply();
        if (!r)
            co_return lost("greeting");
        if (r->code != 220)
            co_return refused("greeting", *r);
        co_return std::nullopt;
    }

    // EHLO, or HELO from a server that does not know EHLO.
    asio::awaitable<Step> hello() {
        std::string name = s_.helo_name.empty()
                               ? address_literal(local_address_)
                               : s_.helo_name;
        auto r = co_await command("EHLO " + name);
        if (!r)
            co_return lost("EHLO");
        if (r->code == 250) {
            extensions_ = parse_ehlo(*r);
            co_return std::nullopt;
        }
        if (r->code != 500 && r->code != 502 && r->code != 504)
            co_return refused("EHLO", *r);
        extensions_ = {};
        r = co_await command("HELO " + name);
        if (!r)
            co_return lost("HELO");
        if (r->code != 250)
            co_return refused("HELO", *r);
        co_return std::nullopt;
    }

    // TLS is required: a server that does not offer it gets nothing.
    asio::awaitable<Step> start_tls() {
        if (!extensions_.keywords.count("STARTTLS"))
            co_return outcome(Outcome::Kind::tempfail, "STARTTLS",
                              "the server offers no STARTTLS, and TLS is "
                              "required");
        auto r = co_await command("STARTTLS");
        if (!r)
            co_return lost("STARTTLS");
        if (r->code != 220)
            co_return refused("STARTTLS", *r);
        connection_->arm(s_.timeout);
        auto ec = co_await connection_->start_tls(*s_.tls, s_.server_name);
        if (ec)
            co_return tls_failed(ec);
        // What the server said before TLS is forgotten (RFC 3207 4.2).
        co_return co_await hello();
    }

    asio::awaitable<Step> authenticate() {
        if (!connection_->is_tls() && !s_.allow_plaintext_auth)
            co_return outcome(Outcome::Kind::permfail, "AUTH",
                              "credentials are only sent over TLS");
        const auto& mechanisms = extensions_.auth;
        std::optional<Reply> r;
        if (mechanisms.count("PLAIN")) {
            r = co_await command(
                "AUTH PLAIN " + auth_plain_response(s_.username, s_.password),
                "AUTH PLAIN");
        } else if (mechanisms.count("LOGIN")) {
            r = co_await command("AUTH LOGIN");
            if (r && r->code == 334)
                r = co_await command(auth_login_response(s_.username),
                                     "(user name)");
            if (r && r->code == 334)
                r = co_await command(auth_login_response(s_.password),
                                     "(password)");
        } else {
            co_return outcome(Outcome::Kind::permfail, "AUTH",
                              "the server offers neither AUTH PLAIN nor "
                              "AUTH LOGIN");
        }
        if (!r)
            co_return lost("AUTH");
        if (r->code != 235)
            co_return refused("AUTH", *r);
        co_return std::nullopt;
    }

    asio::awaitable<Step> transfer(const Envelope& envelope,
                                   std::string_view message) {
        auto r = co_await command("MAIL FROM:<" + envelope.from + ">");
        if (!r)
            co_return lost("MAIL");
        if (r->code != 250)
            co_return refused("MAIL", *r);

        r = co_await command("RCPT TO:<" + envelope.to + ">");
        if (!r)
            co_return lost("RCPT");
        if (r->code != 250 && r->code != 251)
            co_return refused("RCPT", *r);

        r = co_await command("DATA");
        if (!r)
            co_return lost("DATA");
        if (r->code != 354)
            co_return refused("DATA", *r);

        connection_->queue(data_block(message));
        r = co_await read_reply(s_.data_timeout);
        if (!r)
            co_return lost("message");
        if (r->code != 250)
            co_return refused("message", *r);
        co_return outcome(Outcome::Kind::delivered, "message", reply_text(*r));
    }

    // Its reply changes nothing, so it is read only as long as
    // quit_timeout allows.
    asio::awaitable<void> quit() {
        log::trace("-", "smtp", "send", "line={}", log::value("QUIT"));
        connection_->queue("QUIT\r\n");
        co_await read_reply(quit_timeout);
        co_await connection_->shutdown(quit_timeout);
    }

    // `shown` stands for the line in the log when it holds a secret.
    asio::awaitable<std::optional<Reply>> command(std::string line,
                                                  std::string_view shown = {}) {
        log::trace("-", "smtp", "send", "line={}",
                   log::value(shown.empty() ? std::string_view(line) : shown));
        line += "\r\n";
        connection_->queue(line);
        co_return co_await read_reply();
    }

    // Each line within `limit` (default: the settings' timeout).
    asio::awaitable<std::optional<Reply>>
    read_reply(std::chrono::seconds limit = {}) {
        if (limit == std::chrono::seconds::zero())
            limit = s_.timeout;
        ReplyParser parser;
        for (;;) {
            connection_->arm(limit);
            auto line = co_await connection_->read_line();
            if (line.ec) {
                error_ = line.ec == asio::error::timed_out
                             ? "the server did not answer in time"
                             : "connection lost: " + line.ec.message();
                co_return std::nullopt;
            }
            if (line.kind == LineEvent::Kind::too_long) {
                error_ = "the server sent an over-long line";
                co_return std::nullopt;
            }
            log::trace("-", "smtp", "recv", "line={}", log::value(line.text));
            auto status = parser.feed_line(line.text);
            if (status == ReplyParser::Status::error) {
                error_ = "malformed reply: " + parser.error();
                co_return std::nullopt;
            }
            if (status == ReplyParser::Status::complete)
                co_return parser.take();
        }
    }

    asio::any_io_executor executor_;
    const Settings& s_;
    std::shared_ptr<Connection> connection_;
    asio::ip::address local_address_;
    Extensions extensions_;
    std::string error_;
    bool broken_ = false; // no command can follow
};

} // namespace

std::string auth_plain_response(std::string_view username,
                                std::string_view password) {
    std::string token;
    token += '\0';
    token += username;
    token += '\0';
    token += password;
    return base64(token);
}

std::string auth_login_response(std::string_view text) {
    return base64(text);
}

std::string address_literal(const asio::ip::address& address) {
    if (address.is_v6() && address.to_v6().is_v4_mapped())
        return address_literal(asio::ip::make_address_v4(
            asio::ip::v4_mapped, address.to_v6()));
    if (address.is_v6())
        return fmt::format("[IPv6:{}]", address.to_string());
    return fmt::format("[{}]", address.to_string());
}

std::string_view to_string(Outcome::Kind kind) {
    constexpr std::string_view names[] = {"ok", "tempfail", "permfail"};
    return names[static_cast<int>(kind)];
}

asio::awaitable<Outcome> send_mail(asio::any_io_executor executor,
                                   const Settings& settings,
                                   const Envelope& envelope,
                                   std::string_view message) {
    Transaction t(std::move(executor), settings);
    co_return co_await t.run(envelope, message);
}

} // namespace cloudproto::smtp
