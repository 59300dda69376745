// A job as the node holds it: what the customer handed in and what the
// node knows of it so far.
#pragma once

#include "cloudproto/descriptor.hpp"
#include "cloudproto/federation.hpp"
#include "cloudproto/job_report.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cloudnode {

struct Job {
    cloudproto::JobReport report; // id, state, times, outcome
    cloudproto::Descriptor descriptor;
    std::string descriptor_text; // as handed in; kept until the job ends
    std::string script;          // likewise
    std::string digest;          // of both, for idempotent hand-in
    bool durable = false;        // on stable storage: the node owns it

    // A job relayed in: the route it came by (empty for a hand-in).
    cloudproto::RelayRoute route;
    // The peer this node is handing it to, or handed it to; empty while
    // it is not on its way out.
    std::string relay_peer;
    // RELAY went out whole but no reply came: the peer may hold the job,
    // so only that peer may be asked again.
    bool in_doubt = false;
    // Peers besides the route's sender that relayed it too and are owed
    // its result.
    std::vector<std::string> owed_to;
    // Peers that will never take it, and what they said.
    std::vector<std::pair<std::string, std::string>> refused_by;

    const std::string& id() const { return report.job_id; }
    bool relayed_in() const { return !route.trace.empty(); }
};

// SHA-256 (hex) of a hand-in, unambiguous about where the descriptor ends.
std::string payload_digest(std::string_view descriptor,
                           std::string_view script);

} // namespace cloudnode
