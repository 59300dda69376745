#include "cloudproto/connection.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>

namespace cloudproto {

namespace {

constexpr std::size_t read_chunk_bytes = 16 * 1024;

std::string describe(const asio::ip::tcp::socket& s) {
    std::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec)
        return "unknown";
    if (ep.address().is_v6())
        return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
    return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

} // namespace

Connection::Connection(tcp::socket socket, std::size_t max_line_bytes)
    : stream_(std::in_place_index<0>, std::move(socket)),
      max_line_bytes_(max_line_bytes), reader_(max_line_bytes),
      deadline_(std::get<0>(stream_).get_executor()) {
    remote_ = describe(std::get<0>(stream_));
}

Connection::Connection(tcp::socket socket, asio::ssl::context& tls,
                       std::size_t max_line_bytes)
    : stream_(std::in_place_index<1>, std::move(socket), tls),
      max_line_bytes_(max_line_bytes), reader_(max_line_bytes),
      deadline_(std::get<1>(stream_).get_executor()) {
    remote_ = describe(std::get<1>(stream_).next_layer());
}

Connection::~Connection() = default;

bool Connection::is_tls() const {
    return stream_.index() == 1;
}

SSL* Connection::native_tls() {
    auto* tls = std::get_if<1>(&stream_);
    return tls ? tls->native_handle() : nullptr;
}

Connection::tcp::socket& Connection::socket() {
    if (auto* plain = std::get_if<0>(&stream_))
        return *plain;
    return std::get<1>(stream_).next_layer();
}

// A failure caused by the watchdog reads as a timeout, not as the
// cancellation it was made with.
std::error_code Connection::outcome(std::error_code ec) const {
    if (ec && timed_out_)
        return asio::error::timed_out;
    return ec;
}

asio::awaitable<std::error_code> Connection::server_handshake() {
    std::error_code ec;
    if (auto* tls = std::get_if<1>(&stream_))
        co_await tls->async_handshake(
            asio::ssl::stream_base::server,
            asio::redirect_error(asio::use_awaitable, ec));
    co_return outcome(ec);
}

asio::awaitable<std::error_code>
Connection::client_handshake(const std::string& host, bool check_host) {
    std::error_code ec;
    auto* tls = std::get_if<1>(&stream_);
    if (!tls)
        co_return ec;

    // SNI, and the name the certificate must carry.
    SSL* ssl = tls->native_handle();
    SSL_set_tlsext_host_name(ssl, host.c_str());
    if (check_host)
        SSL_set1_host(ssl, host.c_str());
    co_await tls->async_handshake(
        asio::ssl::stream_base::client,
        asio::redirect_error(asio::use_awaitable, ec));
    co_return outcome(ec);
}

asio::awaitable<std::error_code>
Connection::start_tls(asio::ssl::context& tls, const std::string& host) {
    auto* plain = std::get_if<0>(&stream_);
    if (!plain)
        co_return asio::error::already_connected;
    reader_ = LineReader(max_line_bytes_);
    output_.clear();
    tcp::socket socket = std::move(*plain);
    stream_.emplace<1>(std::move(socket), tls);
    co_return co_await client_handshake(host);
}

void Connection::arm(duration limit) {
    deadline_.expires_after(limit);
    if (!watching_ && !closed_) {
        watching_ = true;
        asio::co_spawn(deadline_.get_executor(), watch(shared_from_this()),
                       asio::detached);
    }
}

void Connection::disarm() {
    deadline_.expires_at(deadline_.expiry().max());
}

// The watchdog: wakes whenever the deadline moves, and cancels what is
// under way once it has truly passed. It holds the connection alive
// until close().
asio::awaitable<void>
Connection::watch([[maybe_unused]] std::shared_ptr<Connection> self) {
    while (!closed_) {
        std::error_code ec;
        co_await deadline_.async_wait(
            asio::redirect_error(asio::use_awaitable, ec));
        if (closed_)
            break;
        if (deadline_.expiry() <= std::chrono::steady_clock::now()) {
            timed_out_ = true;
            socket().cancel(ec);
            disarm();
        }
    }
    watching_ = false;
}

asio::awaitable<std::size_t> Connection::read_some(asio::mutable_buffer buffer,
                                                   std::error_code& ec) {
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    std::size_t n = 0;
    if (auto* plain = std::get_if<0>(&stream_))
        n = co_await plain->async_read_some(buffer, token);
    else
        n = co_await std::get<1>(stream_).async_read_some(buffer, token);
    ec = outcome(ec);
    co_return n;
}

asio::awaitable<Connection::Line> Connection::read_line() {
    Line line;
    for (;;) {
        // Too much output waits, or some was lost: the other end takes
        // it before it is heard again, or is not heard again.
        if (send_error_ || output_.size() > max_queued_bytes) {
            auto ec = co_await flush();
            if (ec) {
                line.ec = ec;
                co_return line;
            }
        }

        LineEvent ev = reader_.next();
        if (ev.kind != LineEvent::Kind::need_more) {
            line.kind = ev.kind;
            line.text.assign(ev.text);
            co_return line;
        }

        // About to wait for the peer: let it have our replies first.
        if (!output_.empty()) {
            auto ec = co_await flush();
            if (ec) {
                line.ec = ec;
                co_return line;
            }
        }
        auto space = reader_.prepare(read_chunk_bytes);
        std::error_code ec;
        std::size_t n =
            co_await read_some(asio::buffer(space.data(), space.size()), ec);
        reader_.commit(n);
        if (ec && n == 0) {
            line.ec = ec;
            co_return line;
        }
    }
}

// The payload grows with what arrives, not with what was announced, so
// that a peer holds as much of the node's memory as it has sent.
asio::awaitable<std::error_code> Connection::read_payload(std::size_t n,
                                                          std::string& out) {
    out.clear();
    reader_.take(n, out);
    while (out.size() < n) {
        // About to wait for the peer, as read_line() does: the replies to
        // the commands it sent before this payload go out first (a client
        // may wait for them before it sends the rest).
        if (!output_.empty()) {
            auto ec = co_await flush();
            if (ec)
                co_return ec;
        }
        std::size_t before = out.size();
        std::size_t want = std::min(n - before, read_chunk_bytes);
        out.resize(before + want);
        std::error_code ec;
        std::size_t got =
            co_await read_some(asio::buffer(out.data() + before, want), ec);
        out.resize(before + got);
        if (ec && got == 0)
            co_return ec;
    }
    co_return std::error_code{};
}

void Connection::queue(std::string_view bytes) {
    if (!send_error_)
        output_.append(bytes);
}

asio::awaitable<std::error_code> Connection::flush() {
    if (output_.empty() || send_error_)
        co_return send_error_;
    auto ec = co_await write({});
    co_return ec;
}

asio::awaitable<std::error_code> Connection::send(std::string_view bytes) {
    if (send_error_)
        co_return send_error_;
    auto ec = co_await write(bytes);
    co_return ec;
}

// Writes the queue, then `more`, in one gathered write. A failure is
// kept: what follows a cut write would be read as part of it.
asio::awaitable<std::error_code> Connection::write(std::string_view more) {
    std::string out;
    out.swap(output_);
    std::array<asio::const_buffer, 2> buffers = {
        asio::buffer(out), asio::buffer(more.data(), more.size())};
    std::error_code ec;
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    if (auto* plain = std::get_if<0>(&stream_))
        co_await asio::async_write(*plain, buffers, token);
    else
        co_await asio::async_write(std::get<1>(stream_), buffers, token);
    send_error_ = outcome(ec);
    co_return send_error_;
}

asio::awaitable<void> Connection::shutdown(duration limit) {
    if (closed_)
        co_return;
    arm(limit);
    co_await flush();
    if (auto* tls = std::get_if<1>(&stream_);
        tls && !timed_out_ && !send_error_) {
        std::error_code ec;
        co_await tls->async_shutdown(
            asio::redirect_error(asio::use_awaitable, ec));
    }
    close();
}

void Connection::cancel() {
    std::error_code ec;
    socket().cancel(ec);
}

asio::awaitable<void> Connection::drain(duration limit) {
    arm(limit);
    auto ec = co_await flush();
    if (!is_tls())
        socket().shutdown(tcp::socket::shutdown_send, ec);
    std::array<char, read_chunk_bytes> sink;
    while (!ec)
        co_await read_some(asio::buffer(sink), ec);
}

void Connection::close() {
    if (closed_)
        return;
    closed_ = true;
    std::error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
    deadline_.cancel();
}

} // namespace cloudproto
