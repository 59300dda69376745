#include "node/peer_trust.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace cloudnode;
using cloudproto::tls::PeerCertificate;

namespace {

const std::string beta_pin(64, 'b');
const std::string gamma_pin(64, 'c');

Federation with_authority() {
    Federation f;
    f.authority = "/etc/cloud/federation-ca.pem";
    f.peers = {{"beta", "192.0.2.2", "25683", ""},
               {"gamma", "192.0.2.3", "25683", gamma_pin}};
    return f;
}

Federation pinned_only() {
    Federation f;
    f.peers = {{"beta", "192.0.2.2", "25683", beta_pin},
               {"gamma", "192.0.2.3", "25683", gamma_pin}};
    return f;
}

PeerCertificate cert(std::vector<std::string> names, bool chain_verified,
                     std::string sha256) {
    PeerCertificate c;
    c.present = true;
    c.chain_verified = chain_verified;
    c.sha256 = std::move(sha256);
    c.names = std::move(names);
    return c;
}

} // namespace

TEST_CASE("what a certificate proves, peer by peer") {
    const Federation ca = with_authority();
    const Federation pins = pinned_only();
    const Peer& ca_beta = ca.peers[0];
    const Peer& ca_gamma = ca.peers[1];
    const Peer& pin_beta = pins.peers[0];
    const Peer& pin_gamma = pins.peers[1];

    struct Row {
        const char* what;
        const Federation& federation;
        const Peer& peer;
        PeerCertificate cert;
        bool proves;
    } rows[] = {
        {"no certificate", ca, ca_beta, PeerCertificate{}, false},
        {"no certificate, even with the facts filled in", pins, pin_beta,
         [] {
             auto c = cert({"beta"}, true, beta_pin);
             c.present = false;
             return c;
         }(),
         false},

        // Authority, peer not pinned.
        {"chains, names the peer", ca, ca_beta, cert({"beta"}, true, ""), true},
        {"chains, the peer among several names", ca, ca_beta,
         cert({"www", "beta", "other"}, true, beta_pin), true},
        {"chains, names another peer", ca, ca_beta, cert({"gamma"}, true, ""),
         false},
        {"chains, names nobody", ca, ca_beta, cert({}, true, ""), false},
        {"chains, a name that only starts like the peer's", ca, ca_beta,
         cert({"beta.example.org"}, true, ""), false},
        {"chains, a wildcard", ca, ca_beta, cert({"*"}, true, ""), false},
        {"does not chain, names the peer", ca, ca_beta,
         cert({"beta"}, false, ""), false},

        // Authority and a pin: both must hold.
        {"chains, pin matches", ca, ca_gamma, cert({"gamma"}, true, gamma_pin),
         true},
        {"chains, pin does not match", ca, ca_gamma,
         cert({"gamma"}, true, beta_pin), false},
        {"chains, no digest", ca, ca_gamma, cert({"gamma"}, true, ""), false},
        {"pin matches, does not chain", ca, ca_gamma,
         cert({"gamma"}, false, gamma_pin), false},
        {"pin matches, names another peer", ca, ca_gamma,
         cert({"beta"}, true, gamma_pin), false},

        // No authority: the pin decides, the chain does not matter.
        {"no authority, pin matches, chain not verified", pins, pin_beta,
         cert({"beta"}, false, beta_pin), true},
        {"no authority, pin matches, chain verified", pins, pin_beta,
         cert({"beta"}, true, beta_pin), true},
        {"no authority, pin does not match", pins, pin_beta,
         cert({"beta"}, false, gamma_pin), false},
        {"no authority, pin in upper case", pins, pin_beta,
         cert({"beta"}, false, std::string(64, 'B')), false},
        {"no authority, pin matches, names another peer", pins, pin_gamma,
         cert({"beta"}, false, gamma_pin), false},
    };
    for (const auto& row : rows) {
        CAPTURE(row.what);
        CHECK(proves(row.federation, row.peer, row.cert) == row.proves);
    }
}

TEST_CASE("identify_peer finds the one configured peer a certificate proves") {
    const Federation ca = with_authority();
    const Federation pins = pinned_only();

    CHECK(identify_peer(ca, PeerCertificate{}) == nullptr);
    CHECK(identify_peer(ca, cert({"beta"}, true, "")) == &ca.peers[0]);
    CHECK(identify_peer(ca, cert({"gamma"}, true, gamma_pin)) == &ca.peers[1]);
    CHECK(identify_peer(ca, cert({"gamma"}, true, "")) == nullptr);
    CHECK(identify_peer(ca, cert({"beta"}, false, "")) == nullptr);
    CHECK(identify_peer(ca, cert({"delta"}, true, "")) == nullptr);

    CHECK(identify_peer(pins, cert({"beta"}, false, beta_pin)) ==
          &pins.peers[0]);
    CHECK(identify_peer(pins, cert({"gamma"}, false, gamma_pin)) ==
          &pins.peers[1]);
    // gamma's certificate that also names beta passes for gamma only:
    // beta's pin is another.
    CHECK(identify_peer(pins, cert({"beta", "gamma"}, false, gamma_pin)) ==
          &pins.peers[1]);
    CHECK(identify_peer(pins, cert({"beta"}, false, gamma_pin)) == nullptr);

    Federation none;
    CHECK(identify_peer(none, cert({"beta"}, true, beta_pin)) == nullptr);
}

// proto-spec 16.2 rule (c): "Names are compared without regard to case."
TEST_CASE("a certificate names a peer whatever the case") {
    Federation ca = with_authority();
    ca.peers[0].name = "beta.example.org";
    CHECK(proves(ca, ca.peers[0], cert({"BETA.Example.ORG"}, true, "")));
    CHECK(identify_peer(ca, cert({"Beta.example.org"}, true, "")) ==
          &ca.peers[0]);
}
