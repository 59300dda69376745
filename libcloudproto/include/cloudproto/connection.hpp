// One connection carrying protocol lines and payloads, over TLS or over
// plain TCP (the loopback listener), for both ends of a session.
//
// Output is queued and sent when the connection is about to wait for
// input, so that replies to pipelined commands leave in one write, or
// before the next line once more than max_queued_bytes wait: an end
// that sends without reading stalls its own connection (until the
// deadline ends it) instead of growing the other end's memory.
#pragma once

#include "cloudproto/line_reader.hpp"

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <variant>

namespace cloudproto {

class Connection : public std::enable_shared_from_this<Connection> {
public:
    using tcp = asio::ip::tcp;
    using duration = std::chrono::steady_clock::duration;

    // Queued output beyond this is sent before another line is read.
    static constexpr std::size_t max_queued_bytes = 64 * 1024;

    struct Line {
        std::error_code ec; // set: no line (closed, timed out, ...)
        LineEvent::Kind kind = LineEvent::Kind::line;
        std::string text;
    };

    Connection(tcp::socket socket, std::size_t max_line_bytes);
    Connection(tcp::socket socket, asio::ssl::context& tls,
               std::size_t max_line_bytes);
    ~Connection();

    bool is_tls() const;
    // The TLS session, for what the other end's certificate proves; null
    // on a plain connection.
    SSL* native_tls();
    const std::string& remote() const { return remote_; }

    // TLS handshakes; they succeed at once on a plain connection. The
    // client's checks the certificate against `host`.
    asio::awaitable<std::error_code> server_handshake();
    // Turns a plain connection into a TLS one (SMTP's STARTTLS, RFC
    // 3207): what the other end sent before is discarded, then the
    // client's handshake runs as client_handshake's.
    asio::awaitable<std::error_code> start_tls(asio::ssl::context& tls,
                                               const std::string& host);

    // `check_host` false: only SNI; the caller judges the certificate.
    asio::awaitable<std::error_code> client_handshake(const std::string& host,
                                                      bool check_host = true);

    // From now on, reads and writes fail with asio::error::timed_out once
    // `limit` has passed, until the next arm() or disarm().
    void arm(duration limit);
    void disarm();

    asio::awaitable<Line> read_line();
    asio::awaitable<std::error_code> read_payload(std::size_t n,
                                                  std::string& out);

    void queue(std::string_view bytes);
    std::size_t queued_bytes() const { return output_.size(); }
    asio::awaitable<std::error_code> flush();
    // Sends what is queued, then `bytes` from where they lie: for a
    // payload too large to copy into the queue.
    asio::awaitable<std::error_code> send(std::string_view bytes);

    // A write failed (timed out, most likely: the other end does not
    // read): part of the output is lost, so nothing more is sent, and
    // shutdown() only closes.
    bool send_failed() const { return static_cast<bool>(send_error_); }

    // Ends what is under way (it fails with operation_aborted) without
    // closing: what is queued can still be sent.
    void cancel();

    // After a reply that closes while the peer may still be sending:
    // sends what is queued, stops sending, and reads and drops input for
    // up to `limit`, so that unread input does not make the kernel reset
    // the connection before the peer has read the reply.
    asio::awaitable<void> drain(duration limit);

    // Flushes what is queued, says goodbye to TLS within `limit`, closes.
    asio::awaitable<void> shutdown(duration limit);
    void close();

private:
    using tls_stream = asio::ssl::stream<tcp::socket>;

    tcp::socket& socket();
    asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer,
                                           std::error_code& ec);
    asio::awaitable<void> watch(std::shared_ptr<Connection> self);
    std::error_code outcome(std::error_code ec) const;
    asio::awaitable<std::error_code> write(std::string_view more);

    std::variant<tcp::socket, tls_stream> stream_;
    std::size_t max_line_bytes_;
    LineReader reader_;
    std::string output_;
    std::error_code send_error_;
    std::string remote_;
    asio::steady_timer deadline_;
    bool watching_ = false;
    bool timed_out_ = false;
    bool closed_ = false;
};

} // namespace cloudproto
