// Who the other end of a TLS connection is (proto-spec "Peers and
// trust"): a peer only when its certificate proves it, never because of
// what it says.
#pragma once

#include "node/config.hpp"

#include "cloudproto/tls.hpp"

namespace cloudnode {

// Whether `cert` proves its holder is `peer`: it names the peer, chains
// to the federation's authority when one is configured, and has the
// pinned fingerprint when the peer is pinned.
bool proves(const Federation& federation, const Peer& peer,
            const cloudproto::tls::PeerCertificate& cert);

// The configured peer `cert` proves, or null: a customer.
const Peer* identify_peer(const Federation& federation,
                          const cloudproto::tls::PeerCertificate& cert);

} // namespace cloudnode
