// The node's listening addresses: another program cannot bind beside
// it, and a node that starts again binds its port at once.
#include "node/platform/listener.hpp"

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <doctest/doctest.h>

namespace {

using asio::ip::tcp;

const tcp::endpoint loopback(asio::ip::make_address("127.0.0.1"), 0);

// An acceptor that claims `where` as the node does, listening.
void listen(tcp::acceptor& acceptor, const tcp::endpoint& where,
            std::error_code& ec) {
    acceptor.open(where.protocol());
    cloudnode::platform::claim_address(acceptor, ec);
    if (!ec)
        acceptor.bind(where, ec);
    if (!ec)
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
}

} // namespace

TEST_CASE("no other socket binds the address a node listens on") {
    asio::io_context io;
    tcp::acceptor node(io);
    std::error_code ec;
    listen(node, loopback, ec);
    REQUIRE_FALSE(ec);

    // A port thief asks for address reuse.
    tcp::acceptor thief(io);
    thief.open(loopback.protocol());
    thief.set_option(tcp::acceptor::reuse_address(true));
    thief.bind(node.local_endpoint(), ec);
    CHECK(ec);
}

TEST_CASE("a node binds its port again at once after it closed "
          "connections itself") {
    asio::io_context io;
    tcp::endpoint where;
    {
        tcp::acceptor node(io);
        std::error_code ec;
        listen(node, loopback, ec);
        REQUIRE_FALSE(ec);
        where = node.local_endpoint();
        tcp::socket client(io);
        client.connect(where);
        tcp::socket served = node.accept();
        // The node's side closes first: its end waits in TIME_WAIT.
        served.close();
        char byte;
        client.read_some(asio::buffer(&byte, 1), ec);
        CHECK(ec == asio::error::eof);
    }
    tcp::acceptor again(io);
    std::error_code ec;
    listen(again, where, ec);
    CHECK_FALSE(ec);
}
