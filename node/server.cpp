#include "node/server.hpp"
#include "node/platform/listener.hpp"

#include "cloudproto/log.hpp"
#include "cloudproto/protocol.hpp"
#include "cloudproto/reply.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <stdexcept>

#if __has_include(<sys/resource.h>)
#include <sys/resource.h>
#endif

namespace cloudnode {

namespace log = cloudproto::log;
namespace code = cloudproto::reply_code;
using asio::ip::tcp;

namespace {

// Over-limit TLS connections told 421 at once, each within two
// refusal_timeouts (handshake, then goodbye); the others are closed
// without a word, so that a flood costs no handshakes.
constexpr std::size_t max_refusing_connections = 8;
constexpr std::chrono::seconds refusal_timeout{2};
// Refusals logged in one second at most; the next line counts those
// left out.
constexpr std::size_t max_refusals_logged_per_second = 10;

// Accept fails (out of descriptors, most likely): the connection waits
// in the kernel's queue while the loop pauses, doubling.
constexpr std::chrono::milliseconds first_accept_pause{100};
constexpr std::chrono::milliseconds max_accept_pause{1000};

// Descriptors besides connections: a running job's pipes and process
// handle, and the node's own (log, spool, listeners, mail, peer links).
constexpr std::size_t descriptors_per_job = 16;
constexpr std::size_t descriptors_reserved = 64;

// A coroutine of the server ended by an exception: a bug, not an
// outcome. Say so and go on.
void log_crash(std::string_view id, std::string_view what,
               std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        log::error(id, what, "crashed", "error={}", log::value(ex.what()));
    } catch (...) {
        log::error(id, what, "crashed", "error=unknown");
    }
}

} // namespace

asio::ip::address connection_source(const asio::ip::address& remote) {
    if (!remote.is_v6())
        return remote;
    auto v6 = remote.to_v6();
    if (v6.is_v4_mapped())
        return asio::ip::make_address_v4(asio::ip::v4_mapped, v6);
    auto bytes = v6.to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    return asio::ip::address_v6(bytes);
}

Server::Server(asio::io_context& io, SessionContext& context,
               asio::ssl::context* tls)
    : io_(io), ctx_(context), tls_(tls) {}

void Server::reserve_descriptors() {
#ifdef RLIMIT_NOFILE
    const auto& c = ctx_.config;
    std::size_t needed = c.max_connections + max_refusing_connections +
                         c.listen_tls.size() + c.listen_plain.size() +
                         c.federation.peers.size() +
                         c.slots * descriptors_per_job + descriptors_reserved;

    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) != 0)
        return;
    if (files.rlim_cur < files.rlim_max) {
        rlimit raised = files;
        raised.rlim_cur = files.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            files = raised;
    }
    if (files.rlim_cur != RLIM_INFINITY && files.rlim_cur < needed)
        throw std::runtime_error(fmt::format(
            "limits.max_connections = {} with {} slots needs {} open "
            "descriptors, and this process may open {} (ulimit -Hn); lower "
            "limits.max_connections or raise the limit",
            c.max_connections, c.slots, needed, files.rlim_cur));
    log::info("-", "server", "descriptors", "limit={} needed={}",
              files.rlim_cur, needed);
#endif
}

void Server::listen() {
    reserve_descriptors();
    for (const auto& a : ctx_.config.listen_tls)
        bind(a, true);
    for (const auto& a : ctx_.config.listen_plain)
        bind(a, false);
}

void Server::bind(const ListenAddress& address, bool tls) {
    std::error_code ec;
    tcp::endpoint ep(asio::ip::make_address(address.host), address.port);
    auto& l = listeners_.emplace_back(Listener{tcp::acceptor(io_), tls});
    l.acceptor.open(ep.protocol(), ec);
    if (!ec)
        platform::claim_address(l.acceptor, ec);
    if (!ec)
        l.acceptor.bind(ep, ec);
    if (!ec)
        l.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}",
                                             address.host, address.port,
                                             ec.message()));

    auto bound = l.acceptor.local_endpoint();
    log::info("-", "server", "listening", "address={}:{} tls={}",
              bound.address().to_string(), bound.port(), tls ? "yes" : "no");
    asio::co_spawn(io_, accept_loop(l), asio::detached);
}

asio::awaitable<void> Server::accept_loop(Listener& listener) {
    asio::steady_timer pause_timer(io_);
    auto pause = first_accept_pause;
    for (;;) {
        std::error_code ec;
        tcp::socket socket = co_await listener.acceptor.async_accept(
            asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::operation_aborted ||
            !listener.acceptor.is_open())
            co_return;
        if (ec == asio::error::connection_aborted)
            continue; // gone before it was accepted

        // Accepting again at once would fail again, in a loop.
        if (ec) {
            note_accept_failure(ec, pause);
            pause_timer.expires_after(pause);
            co_await pause_timer.async_wait(
                asio::redirect_error(asio::use_awaitable, ec));
            pause = std::min(pause * 2, max_accept_pause);
            continue;
        }
        pause = first_accept_pause;
        note_accept_success();
        admit(std::move(socket), listener.tls);
    }
}

void Server::note_accept_failure(std::error_code ec,
                                 std::chrono::milliseconds retry) {
    last_accept_failure_ = clock::now();
    if (accept_failures_++ > 0)
        return;
    log::warn("-", "server", "accept-failed", "error={} retry_ms={}",
              log::value(ec.message()), retry.count());
}

// The episode ends with the first connection accepted once accepting
// has not failed for twice the longest pause: while descriptors free
// and run out again, one episode goes on.
void Server::note_accept_success() {
    if (accept_failures_ == 0 ||
        clock::now() - last_accept_failure_ < 2 * max_accept_pause)
        return;
    log::info("-", "server", "accept-resumed", "failures={}", accept_failures_);
    accept_failures_ = 0;
}

void Server::admit(tcp::socket socket, bool tls) {
    std::error_code ec;
    auto remote = socket.remote_endpoint(ec);
    if (ec)
        return; // gone already; the socket closes here
    auto source = connection_source(remote.address());
    if (auto reason = over_limit(source)) {
        refuse(std::move(socket), tls, *reason);
        return;
    }
    socket.set_option(tcp::no_delay(true), ec);
    start_session(std::move(socket), tls, source);
}

// Why the node cannot take one more session from `source`, if it
// cannot: a log word.
std::optional<std::string_view>
Server::over_limit(const asio::ip::address& source) const {
    const auto& c = ctx_.config;
    if (open_sessions_ >= c.max_connections)
        return "too-many-connections";
    auto it = sessions_from_.find(source);
    if (it != sessions_from_.end() &&
        it->second >= c.max_connections_per_address)
        return "too-many-from-address";
    return std::nullopt;
}

// Shed at once: no session, no log line of its own. The plaintext
// listener says 421 in one non-blocking write to a fresh, empty send
// buffer; TLS costs a handshake, which only a few refusals at once get.
void Server::refuse(tcp::socket socket, bool tls, std::string_view reason) {
    const auto& c = ctx_.config;
    std::error_code ec;
    auto remote = socket.remote_endpoint(ec);
    auto text = reason == "too-many-connections"
                    ? c.name + " too many connections"
                    : c.name + " too many connections from your address";

    // A flood is not logged line by line.
    auto now = clock::now();
    if (now - refusal_second_ >= std::chrono::seconds{1}) {
        refusal_second_ = now;
        refusals_logged_ = 0;
    }
    if (refusals_logged_ < max_refusals_logged_per_second) {
        log::info("-", "server", "refused",
                  "remote={}:{} tls={} reason={} sessions={} unlogged={}",
                  remote.address().to_string(), remote.port(),
                  tls ? "yes" : "no", reason, open_sessions_,
                  refusals_unlogged_);
        ++refusals_logged_;
        refusals_unlogged_ = 0;
    } else {
        ++refusals_unlogged_;
    }

    if (!tls) {
        auto line = cloudproto::encode_reply(code::unavailable, text);
        socket.non_blocking(true, ec);
        socket.write_some(asio::buffer(line), ec);
        socket.shutdown(tcp::socket::shutdown_both, ec);
        return;
    }
    if (refusing_ >= max_refusing_connections || !tls_)
        return;
    auto conn = std::make_shared<cloudproto::Connection>(
        std::move(socket), *tls_, cloudproto::max_line_bytes);
    ++refusing_;
    refusals_.remove_if([](auto& w) { return w.expired(); });
    refusals_.push_back(conn);
    asio::co_spawn(io_, refuse_tls(conn, std::move(text)),
                   [this](std::exception_ptr e) {
                       --refusing_;
                       if (e)
                           log_crash("-", "server", e);
                   });
}

asio::awaitable<void>
Server::refuse_tls(std::shared_ptr<cloudproto::Connection> conn,
                   std::string text) {
    conn->arm(refusal_timeout);
    auto handshake = co_await conn->server_handshake();
    if (!handshake)
        conn->queue(cloudproto::encode_reply(code::unavailable, text));
    co_await conn->shutdown(refusal_timeout);
}

void Server::start_session(tcp::socket socket, bool tls,
                           const asio::ip::address& source) {
    std::shared_ptr<cloudproto::Connection> conn;
    if (tls)
        conn = std::make_shared<cloudproto::Connection>(
            std::move(socket), *tls_, cloudproto::max_line_bytes);
    else
        conn = std::make_shared<cloudproto::Connection>(
            std::move(socket), cloudproto::max_line_bytes);

    auto session = std::make_shared<Session>(
        ctx_, std::move(conn), fmt::format("s{}", next_session_++));
    ++open_sessions_;
    ++sessions_from_[source];
    sessions_.remove_if([](auto& w) { return w.expired(); });
    sessions_.push_back(session);
    asio::co_spawn(io_, session->run(),
                   [this, session, source](std::exception_ptr e) {
                       --open_sessions_;
                       auto it = sessions_from_.find(source);
                       if (--it->second == 0)
                           sessions_from_.erase(it);
                       if (e)
                           log_crash(session->id(), "session", e);
                   });
}

void Server::stop() {
    for (auto& l : listeners_) {
        std::error_code ec;
        l.acceptor.close(ec);
    }
    for (auto& w : sessions_) {
        if (auto s = w.lock())
            s->stop();
    }
    for (auto& w : refusals_) {
        if (auto c = w.lock())
            c->close();
    }
}

} // namespace cloudnode
