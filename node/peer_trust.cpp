#include "node/peer_trust.hpp"

#include <algorithm>

namespace cloudnode {

bool proves(const Federation& federation, const Peer& peer,
            const cloudproto::tls::PeerCertificate& cert) {
    if (!cert.present)
        return false;
    const auto& names = cert.names;
    if (std::find(names.begin(), names.end(), peer.name) == names.end())
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
