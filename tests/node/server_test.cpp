#include "node/server.hpp"

#include <doctest/doctest.h>

#include <string>

// What the node counts connections under, for max_connections_per_address.

using cloudnode::connection_source;

namespace {

std::string source_of(const std::string& remote) {
    return connection_source(asio::ip::make_address(remote)).to_string();
}

} // namespace

TEST_CASE("an IPv4 address counts on its own") {
    CHECK(source_of("192.0.2.7") == "192.0.2.7");
    CHECK(source_of("127.0.0.5") == "127.0.0.5");
}

TEST_CASE("an IPv6 address counts with its /64") {
    const struct {
        const char* remote;
        const char* source;
    } table[] = {
        {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
        {"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"},
        {"2001:db8:1:3::1", "2001:db8:1:3::"},
        {"::1", "::"},
        {"fe80::1%1", "fe80::"},
    };
    for (const auto& row : table) {
        INFO(row.remote);
        CHECK(source_of(row.remote) == row.source);
    }
}

TEST_CASE("an IPv4 client on a dual-stack listener counts as IPv4") {
    CHECK(source_of("::ffff:192.0.2.7") == "192.0.2.7");
}
