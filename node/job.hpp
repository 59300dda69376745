// A job as the node holds it: what the customer handed in and what the
// node knows of it so far.
#pragma once

#include "cloudproto/descriptor.hpp"
#include "cloudproto/job_report.hpp"

#include <string>
#include <string_view>

namespace cloudnode {

struct Job {
    cloudproto::JobReport report; // id, state, times, outcome
    cloudproto::Descriptor descriptor;
    std::string descriptor_text; // as handed in; kept until the job ends
    std::string script;          // likewise
    std::string digest;          // of both, for idempotent hand-in
    bool durable = false;        // on stable storage: the node owns it

    const std::string& id() const { return report.job_id; }
};

// SHA-256 (hex) of a hand-in, unambiguous about where the descriptor ends.
std::string payload_digest(std::string_view descriptor,
                           std::string_view script);

} // namespace cloudnode
