// The node's listeners: TLS on every configured address, and plaintext
// on loopback when the operator asks for it. Each accepted connection
// becomes a Session on the same event loop.
#pragma once

#include "node/session.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>

#include <cstdint>
#include <list>
#include <memory>
#include <vector>

namespace cloudnode {

class Server {
public:
    // `tls` may be null when only plaintext listeners are configured.
    Server(asio::io_context& io, SessionContext& context,
           asio::ssl::context* tls);

    // Binds every configured address and starts accepting. Throws
    // std::runtime_error naming the address that cannot be bound.
    void listen();

    // Closes the listeners and every session.
    void stop();

private:
    struct Listener {
        asio::ip::tcp::acceptor acceptor;
        bool tls;
    };

    void bind(const ListenAddress& address, bool tls);
    asio::awaitable<void> accept_loop(Listener& listener);

    asio::io_context& io_;
    SessionContext& ctx_;
    asio::ssl::context* tls_;
    std::list<Listener> listeners_;
    std::list<std::weak_ptr<Session>> sessions_;
    std::uint64_t next_session_ = 1;
    std::size_t open_sessions_ = 0;
};

} // namespace cloudnode
