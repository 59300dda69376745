#include "node/server.hpp"

#include "cloudproto/log.hpp"
#include "cloudproto/protocol.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <stdexcept>

namespace cloudnode {

namespace log = cloudproto::log;
using asio::ip::tcp;

Server::Server(asio::io_context& io, SessionContext& context,
               asio::ssl::context* tls)
    : io_(io), ctx_(context), tls_(tls) {}

void Server::listen() {
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
        l.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
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
    for (;;) {
        std::error_code ec;
        tcp::socket socket = co_await listener.acceptor.async_accept(
            asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::operation_aborted || !listener.acceptor.is_open())
            co_return;
        if (ec) {
            // Out of descriptors, most likely: log it and go on accepting.
            log::warn("-", "server", "accept-failed", "error={}",
                      log::value(ec.message()));
            continue;
        }
        socket.set_option(tcp::no_delay(true), ec);

        std::shared_ptr<cloudproto::Connection> conn;
        if (listener.tls)
            conn = std::make_shared<cloudproto::Connection>(
                std::move(socket), *tls_, cloudproto::max_line_bytes);
        else
            conn = std::make_shared<cloudproto::Connection>(
                std::move(socket), cloudproto::max_line_bytes);

        auto session = std::make_shared<Session>(
            ctx_, std::move(conn), fmt::format("s{}", next_session_++));
        bool refuse = open_sessions_ >= ctx_.config.max_connections;
        ++open_sessions_;
        sessions_.remove_if([](auto& w) { return w.expired(); });
        sessions_.push_back(session);
        asio::co_spawn(io_, session->run(refuse),
                       [this, session](std::exception_ptr e) {
                           --open_sessions_;
                           if (e) {
                               // A bug, not an outcome: say so and go on.
                               try {
                                   std::rethrow_exception(e);
                               } catch (const std::exception& ex) {
                                   log::error(session->id(), "session",
                                              "crashed", "error={}",
                                              log::value(ex.what()));
                               } catch (...) {
                                   log::error(session->id(), "session",
                                              "crashed", "error=unknown");
                               }
                           }
                       });
    }
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
}

} // namespace cloudnode
