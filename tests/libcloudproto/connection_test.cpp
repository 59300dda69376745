#include "cloudproto/connection.hpp"

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

// A Connection over a loopback TCP pair, the other end driven by hand:
// what queued output does when that end reads, or does not.

using namespace cloudproto;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t max_line = 1000;

// More than a loopback connection's buffers take (send buffers grow to
// 4 MiB by default).
constexpr std::size_t unsendable_bytes = 32 * 1024 * 1024;

struct Pair {
    asio::io_context io;
    tcp::socket peer{io};
    std::shared_ptr<Connection> conn;

    // `peer_receive_bytes`: the peer's receive buffer, fixed before it
    // connects; 0 leaves the system's.
    explicit Pair(int peer_receive_bytes = 0) {
        tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
        peer.open(tcp::v4());
        if (peer_receive_bytes > 0)
            peer.set_option(
                asio::socket_base::receive_buffer_size(peer_receive_bytes));
        peer.connect(acceptor.local_endpoint());
        conn = std::make_shared<Connection>(acceptor.accept(), max_line);
    }

    // Runs `body` as a coroutine on the connection's loop until it ends.
    void run(std::function<asio::awaitable<void>()> body) {
        bool done = false;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                co_await body();
                done = true;
            },
            asio::detached);
        io.run_for(20s);
        REQUIRE(done);
    }

    std::size_t peer_available() {
        return peer.available();
    }
};

} // namespace

TEST_CASE("replies below the bound leave when the next line is awaited") {
    Pair p;
    asio::write(p.peer, asio::buffer(std::string("NOOP\r\nNOOP\r\n")));
    p.run([&]() -> asio::awaitable<void> {
        auto first = co_await p.conn->read_line();
        CHECK(first.text == "NOOP");
        p.conn->queue("250 ok\r\n");
        auto second = co_await p.conn->read_line();
        CHECK(second.text == "NOOP");
        p.conn->queue("250 ok\r\n");
        CHECK(p.conn->queued_bytes() == 16);
    });
    CHECK(p.peer_available() == 0); // pipelined replies wait together
}

TEST_CASE("past the bound, queued output leaves before the next line") {
    Pair p;
    asio::write(p.peer, asio::buffer(std::string("A\r\nB\r\n")));
    std::string big(Connection::max_queued_bytes + 1, 'x');
    p.run([&]() -> asio::awaitable<void> {
        auto a = co_await p.conn->read_line();
        CHECK(a.text == "A");
        p.conn->queue(big);
        auto b = co_await p.conn->read_line();
        CHECK(b.text == "B");
        CHECK(p.conn->queued_bytes() == 0);
    });
    std::string got(big.size(), '\0');
    asio::read(p.peer, asio::buffer(got));
    CHECK(got == big);
}

TEST_CASE("a peer that does not read stalls its connection to the deadline") {
    Pair p(4096);
    asio::write(p.peer, asio::buffer(std::string("A\r\nB\r\n")));
    p.run([&]() -> asio::awaitable<void> {
        p.conn->queue(std::string(unsendable_bytes, 'x'));
        p.conn->arm(300ms);
        auto line = co_await p.conn->read_line();
        CHECK(line.ec == asio::error::timed_out);
        CHECK(line.text.empty());
        CHECK(p.conn->send_failed());

        // Nothing more is read or sent: the output was cut.
        p.conn->queue("250 ok\r\n");
        CHECK(p.conn->queued_bytes() == 0);
        auto after = co_await p.conn->read_line();
        CHECK(after.ec == asio::error::timed_out);
        co_await p.conn->shutdown(1s);
    });
}

TEST_CASE("send(): the queue, then the payload, in order") {
    Pair p;
    std::string payload(200 * 1024, 'p');
    p.run([&]() -> asio::awaitable<void> {
        p.conn->queue("250 PAYLOAD 204800 0\r\n");
        auto ec = co_await p.conn->send(payload);
        CHECK(!ec);
        CHECK(p.conn->queued_bytes() == 0);
    });
    std::string head(22, '\0');
    asio::read(p.peer, asio::buffer(head));
    CHECK(head == "250 PAYLOAD 204800 0\r\n");
    std::string body(payload.size(), '\0');
    asio::read(p.peer, asio::buffer(body));
    CHECK(body == payload);
}

TEST_CASE("a payload is read whole, across the line buffer and the socket") {
    Pair p;
    std::string payload(100 * 1024, 'q');
    asio::write(p.peer, asio::buffer("SUBMIT\r\n" + payload + "NOOP\r\n"));
    p.run([&]() -> asio::awaitable<void> {
        auto line = co_await p.conn->read_line();
        CHECK(line.text == "SUBMIT");
        std::string got;
        auto ec = co_await p.conn->read_payload(payload.size(), got);
        CHECK(!ec);
        CHECK(got == payload);
        auto next = co_await p.conn->read_line();
        CHECK(next.text == "NOOP");
    });
}
