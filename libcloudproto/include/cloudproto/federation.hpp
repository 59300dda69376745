// What nodes of different providers say to each other (proto-spec
// section "Federation"): node names, a relayed job's HOPS and TRACE, and
// the lines of a CAPACITY reply.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cloudproto {

inline constexpr std::size_t max_node_name_bytes = 64;

// The most relays a job may make, unless a node's operator says
// otherwise; announced to peers as "RELAY <hop-limit>".
inline constexpr std::size_t default_hop_limit = 8;
// So that the longest RELAY line (13 names of 64 octets) fits in a line.
inline constexpr std::size_t max_hop_limit = 13;

// 1 to 64 of letters, digits, '.' and '-': a name travels in TRACE,
// whose names are separated by commas.
bool is_valid_node_name(std::string_view name);

// Node names compare without regard to case, as host names do.
bool same_node_name(std::string_view a, std::string_view b);

// A relayed job's route so far: the nodes it crossed, origin first and
// the sender last. HOPS is the number of relays made, this one included.
struct RelayRoute {
    std::uint64_t hops = 0;
    std::vector<std::string> trace;

    bool crossed(std::string_view node) const;
    std::string trace_text() const; // "a,b,c"
    // "HOPS=2 TRACE=a,b"
    std::string parameters() const;
};

// The comma-separated names of a TRACE value; nullopt if one is empty or
// not a valid node name.
std::optional<std::vector<std::string>> parse_trace(std::string_view text);

// One "RUNTIME <name> <free-slots> <queued-jobs>" line of CAPACITY.
struct RuntimeCapacity {
    std::string runtime;
    std::uint64_t free_slots = 0;
    std::uint64_t queued_jobs = 0;
};

std::string format_capacity(const RuntimeCapacity& c);
std::optional<RuntimeCapacity> parse_capacity(std::string_view line);

} // namespace cloudproto
