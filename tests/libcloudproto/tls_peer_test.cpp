#include "cloudproto/tls.hpp"

#include "support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/ssl/stream.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

// Certificates made at test time with the openssl command-line tool, and
// a real handshake over a socket pair: what peer_certificate() reads on
// each end.

namespace fs = std::filesystem;
using namespace cloudproto;
using test_support::TempDir;

namespace {

bool have_openssl() {
    return std::system("openssl version >/dev/null 2>&1") == 0;
}

// Runs `command` in `dir`; its output goes to a log there.
void run(const fs::path& dir, const std::string& command) {
    std::string line = "cd '" + dir.string() + "' && { " + command +
                       "; } >>openssl.log 2>&1";
    INFO(command);
    REQUIRE(std::system(line.c_str()) == 0);
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// A CA and certificates for the tests, each with a key of its own:
//   ca        the federation authority
//   alpha     the node's server certificate, from ca, DNS alpha
//   beta      a peer's, from ca, DNS beta.example.org and beta, another CN
//   gamma     from ca, no subjectAltName: CN gamma.example.org only
//   rogue     self-signed, DNS beta
//   other-ca  an authority the node does not know, and delta from it
struct Certificates {
    TempDir dir{"tls-peer"};

    Certificates() {
        const std::string key =
            "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        const std::string ca_ext =
            "-addext basicConstraints=critical,CA:TRUE "
            "-addext keyUsage=critical,keyCertSign,cRLSign";
        run(dir.path, "openssl req -x509 " + key +
                          " -keyout ca.key -out ca.crt -days 2 "
                          "-subj /CN=federation-ca " + ca_ext);
        run(dir.path, "openssl req -x509 " + key +
                          " -keyout other-ca.key -out other-ca.crt -days 2 "
                          "-subj /CN=other-ca " + ca_ext);
        issue("alpha", "/CN=alpha", "subjectAltName=DNS:alpha", "ca");
        issue("beta", "/CN=not-the-name",
              "subjectAltName=DNS:beta.example.org,DNS:beta,IP:127.0.0.1",
              "ca");
        issue("gamma", "/O=Gamma Ltd/CN=gamma.example.org", "", "ca");
        issue("delta", "/CN=delta", "subjectAltName=DNS:delta", "other-ca");
        run(dir.path, "openssl req -x509 " + key +
                          " -keyout rogue.key -out rogue.crt -days 2 "
                          "-subj /CN=rogue -addext subjectAltName=DNS:beta");
    }

    void issue(const std::string& name, const std::string& subject,
               const std::string& extensions, const std::string& ca) {
        run(dir.path, "openssl req -newkey ec -pkeyopt "
                      "ec_paramgen_curve:prime256v1 -nodes -keyout " +
                          name + ".key -out " + name + ".csr -subj '" +
                          subject + "'");
        std::string ext_option;
        if (!extensions.empty()) {
            std::ofstream(dir.path / (name + ".ext")) << extensions << '\n';
            ext_option = " -extfile " + name + ".ext";
        }
        run(dir.path, "openssl x509 -req -in " + name + ".csr -CA " + ca +
                          ".crt -CAkey " + ca + ".key -CAcreateserial -out " +
                          name + ".crt -days 2" + ext_option);
    }

    fs::path crt(const std::string& name) const {
        return dir.path / (name + ".crt");
    }
    fs::path key(const std::string& name) const {
        return dir.path / (name + ".key");
    }

    // As openssl prints it, made lower-case hex without colons.
    std::string sha256(const std::string& name) const {
        run(dir.path, "openssl x509 -in " + name +
                          ".crt -noout -fingerprint -sha256 >" + name +
                          ".fp");
        auto text = read_file(dir.path / (name + ".fp"));
        std::string hex;
        for (char c : text.substr(text.find('=') + 1)) {
            if (c >= 'A' && c <= 'F')
                hex += static_cast<char>(c - 'A' + 'a');
            else if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
                hex += c;
        }
        return hex;
    }
};

using Stream = asio::ssl::stream<asio::local::stream_protocol::socket>;

struct Handshake {
    std::string server_error;
    std::string client_error;
    tls::PeerCertificate server_saw; // the client's certificate
    tls::PeerCertificate client_saw; // the server's certificate
};

// One TLS handshake over a socket pair, both ends in this thread.
Handshake shake(asio::ssl::context& server_ctx,
                asio::ssl::context& client_ctx) {
    asio::io_context io;
    asio::local::stream_protocol::socket a(io), b(io);
    asio::local::connect_pair(a, b);
    Stream server(std::move(a), server_ctx);
    Stream client(std::move(b), client_ctx);

    Handshake h;
    server.async_handshake(Stream::server, [&](const std::error_code& ec) {
        h.server_error = ec ? ec.message() : "";
        if (!ec)
            h.server_saw = tls::peer_certificate(server.native_handle());
    });
    client.async_handshake(Stream::client, [&](const std::error_code& ec) {
        h.client_error = ec ? ec.message() : "";
        if (!ec)
            h.client_saw = tls::peer_certificate(client.native_handle());
    });
    io.run();
    return h;
}

std::optional<Certificates>& certificates() {
    static std::optional<Certificates> certs;
    if (!certs && have_openssl())
        certs.emplace();
    return certs;
}

} // namespace

TEST_CASE("peer certificates read over a real handshake") {
    if (!have_openssl()) {
        MESSAGE("no openssl command: skipped");
        return;
    }
    const Certificates& c = *certificates();

    struct Row {
        const char* client;    // its certificate, or "" for a customer
        const char* authority; // the server's, or "" (peers pinned)
        bool present;
        bool chain_verified;
        std::vector<std::string> names;
    } rows[] = {
        {"", "ca", false, false, {}},
        {"", "", false, false, {}},
        {"beta", "ca", true, true, {"beta.example.org", "beta"}},
        {"beta", "", true, false, {"beta.example.org", "beta"}},
        {"gamma", "ca", true, true, {"gamma.example.org"}},
        {"rogue", "ca", true, false, {"beta"}},
        {"rogue", "", true, false, {"beta"}},
        {"delta", "ca", true, false, {"delta"}},
        {"delta", "other-ca", true, true, {"delta"}},
    };
    for (const auto& row : rows) {
        const std::string client = row.client;
        const std::string authority = row.authority;
        CAPTURE(client);
        CAPTURE(authority);

        auto server_ctx = tls::make_server_context(c.crt("alpha"),
                                                   c.key("alpha"));
        tls::ask_for_peer_certificates(
            server_ctx, authority.empty() ? fs::path() : c.crt(authority));
        auto client_ctx =
            client.empty()
                ? tls::make_client_context(c.crt("ca"))
                : tls::make_peer_client_context(c.crt(client), c.key(client),
                                                c.crt("ca"));

        auto h = shake(server_ctx, client_ctx);
        REQUIRE(h.server_error == "");
        REQUIRE(h.client_error == "");

        const auto& seen = h.server_saw;
        CHECK(seen.present == row.present);
        CHECK(seen.chain_verified == row.chain_verified);
        CHECK(seen.names == row.names);
        if (row.present)
            CHECK(seen.sha256 == c.sha256(client));
        else
            CHECK(seen.sha256 == "");

        // The link's view of the node it connected to.
        CHECK(h.client_saw.present);
        CHECK(h.client_saw.names == std::vector<std::string>{"alpha"});
        CHECK(h.client_saw.sha256 == c.sha256("alpha"));
        if (!client.empty())
            CHECK(h.client_saw.chain_verified);
    }
}

TEST_CASE("a link finishes its handshake with any server certificate") {
    if (!have_openssl()) {
        MESSAGE("no openssl command: skipped");
        return;
    }
    const Certificates& c = *certificates();

    // The link judges afterwards: a server certificate from an unknown
    // authority, or self-signed, still lets the handshake finish.
    for (std::string server : {"delta", "rogue", "beta"}) {
        CAPTURE(server);
        auto server_ctx = tls::make_server_context(c.crt(server),
                                                   c.key(server));
        tls::ask_for_peer_certificates(server_ctx, c.crt("ca"));
        auto link_ctx = tls::make_peer_client_context(c.crt("alpha"),
                                                      c.key("alpha"),
                                                      c.crt("ca"));
        auto h = shake(server_ctx, link_ctx);
        REQUIRE(h.server_error == "");
        REQUIRE(h.client_error == "");
        CHECK(h.client_saw.present);
        CHECK(h.client_saw.chain_verified == (server == "beta"));
        CHECK(h.client_saw.sha256 == c.sha256(server));
        CHECK(h.server_saw.names == std::vector<std::string>{"alpha"});
        CHECK(h.server_saw.chain_verified);
    }

    // With no authority at all (every peer pinned), nothing chains.
    auto server_ctx = tls::make_server_context(c.crt("beta"), c.key("beta"));
    tls::ask_for_peer_certificates(server_ctx, fs::path());
    auto link_ctx = tls::make_peer_client_context(c.crt("alpha"),
                                                  c.key("alpha"), fs::path());
    auto h = shake(server_ctx, link_ctx);
    REQUIRE(h.client_error == "");
    CHECK(h.client_saw.present);
    CHECK_FALSE(h.client_saw.chain_verified);
    CHECK_FALSE(h.server_saw.chain_verified);
    CHECK(h.server_saw.sha256 == c.sha256("alpha"));
}

TEST_CASE("peer_certificate of no connection proves nothing") {
    auto pc = tls::peer_certificate(nullptr);
    CHECK_FALSE(pc.present);
    CHECK_FALSE(pc.chain_verified);
    CHECK(pc.sha256 == "");
    CHECK(pc.names.empty());
}

TEST_CASE("an authority that cannot be read is named in the error") {
    asio::ssl::context server(asio::ssl::context::tls_server);
    CHECK_THROWS_WITH_AS(
        tls::ask_for_peer_certificates(server, "/nonexistent/ca.pem"),
        doctest::Contains("/nonexistent/ca.pem"), std::runtime_error);
}
