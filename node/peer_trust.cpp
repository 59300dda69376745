#include "node/peer_trust.hpp"

#include "cloudproto/federation.hpp"

#include <algorithm>

namespace cloudnode {

bool proves(const Federation& federation, const Peer& peer,
            const cloudproto::tls::PeerCertificate& cert) {
    if (!cert.present)
        return false;
    const auto& names = cert.names;
    bool named = std::any_of(names.begin(), names.end(), [&](const auto& n) {
        return cloudproto::same_node_name(n, peer.name);
    });
    if (!named)
        return false;
    if (!federation.authority.empty() && !cert.chain_verified)
        return false;
    if (!peer.fingerprint.empty() && peer.fingerprint != cert.sha256)
        return false;
    return true;
}

const Peer* identify_peer(const Federation& federation,
                          const cloudproto::tls::PeerCertificate& cert) {
    for (const auto& peer : federation.peers) {
        if (proves(federation, peer, cert))
            return &peer;
    }
    return nullptr;
}

} // namespace cloudnode
