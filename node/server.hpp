// The node's listeners: TLS on every configured address, and plaintext
// on loopback when the operator asks for it. Each accepted connection
// becomes a Session on the same event loop, unless the node already
// holds as many as it may, in all or from that address (proto-spec
// section "Limits").
#pragma once

#include "node/session.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace cloudnode {

// What connections are counted under: an IPv4 address, or the /64 an
// IPv6 address is in (one host often holds a whole /64).
asio::ip::address connection_source(const asio::ip::address& remote);

class Server {
public:
    // `tls` may be null when only plaintext listeners are configured.
    Server(asio::io_context& io, SessionContext& context,
           asio::ssl::context* tls);

    // Raises the soft limit on open descriptors to the hard one, then
    // checks that it holds every connection the configuration allows,
    // with what jobs and the node's files need. Throws
    // std::runtime_error when it does not.
    void reserve_descriptors();

    // Binds every configured address and starts accepting. Throws
    // std::runtime_error naming the address that cannot be bound.
    void listen();

    // Closes the listeners and every session.
    void stop();

private:
    using clock = std::chrono::steady_clock;

    struct Listener {
        asio::ip::tcp::acceptor acceptor;
        bool tls;
    };

    void bind(const ListenAddress& address, bool tls);
    asio::awaitable<void> accept_loop(Listener& listener);
    void note_accept_failure(std::error_code ec,
                             std::chrono::milliseconds retry);
    void note_accept_success();

    void admit(asio::ip::tcp::socket socket, bool tls);
    std::optional<std::string_view>
    over_limit(const asio::ip::address& source) const;
    void refuse(asio::ip::tcp::socket socket, bool tls,
                std::string_view reason);
    asio::awaitable<void>
    refuse_tls(std::shared_ptr<cloudproto::Connection> connection,
               std::string text);
    void start_session(asio::ip::tcp::socket socket, bool tls,
                       const asio::ip::address& source);

    asio::io_context& io_;
    SessionContext& ctx_;
    asio::ssl::context* tls_;
    std::list<Listener> listeners_;
    std::list<std::weak_ptr<Session>> sessions_;
    std::uint64_t next_session_ = 1;

    // Sessions held now, in all and by source.
    std::size_t open_sessions_ = 0;
    std::map<asio::ip::address, std::size_t> sessions_from_;

    // Over-limit TLS connections being told 421.
    std::list<std::weak_ptr<cloudproto::Connection>> refusals_;
    std::size_t refusing_ = 0;
    // Refusals come in floods: a few lines a second at most.
    clock::time_point refusal_second_{};
    std::size_t refusals_logged_ = 0;
    std::size_t refusals_unlogged_ = 0;

    // An episode of failing accepts (out of descriptors): one line when
    // it starts, one when it ends.
    std::size_t accept_failures_ = 0;
    clock::time_point last_accept_failure_{};
};

} // namespace cloudnode
