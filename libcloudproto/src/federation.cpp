#include "cloudproto/federation.hpp"

#include "cloudproto/descriptor.hpp"
#include "cloudproto/text.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace cloudproto {

namespace {

// Capacity figures are numbers as the spec's ABNF writes them.
constexpr std::size_t max_capacity_digits = 18;

} // namespace

bool is_valid_node_name(std::string_view name) {
    if (name.empty() || name.size() > max_node_name_bytes)
        return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '.' || c == '-';
    });
}

bool same_node_name(std::string_view a, std::string_view b) {
    auto lower = [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(),
                      [&](char x, char y) { return lower(x) == lower(y); });
}

bool RelayRoute::crossed(std::string_view node) const {
    return std::any_of(trace.begin(), trace.end(), [&](const std::string& n) {
        return same_node_name(n, node);
    });
}

std::string RelayRoute::trace_text() const {
    return fmt::format("{}", fmt::join(trace, ","));
}

std::string RelayRoute::parameters() const {
    return fmt::format("HOPS={} TRACE={}", hops, trace_text());
}

std::optional<std::vector<std::string>> parse_trace(std::string_view text) {
    std::vector<std::string> names;
    for (;;) {
        auto comma = text.find(',');
        auto name = text.substr(0, comma);
        if (!is_valid_node_name(name))
            return std::nullopt;
        names.emplace_back(name);
        if (comma == std::string_view::npos)
            return names;
        text.remove_prefix(comma + 1);
    }
}

std::string format_capacity(const RuntimeCapacity& c) {
    return fmt::format("RUNTIME {} {} {}", c.runtime, c.free_slots,
                       c.queued_jobs);
}

std::optional<RuntimeCapacity> parse_capacity(std::string_view line) {
    auto w = split_words(line);
    if (w.size() != 4 || w[0] != "RUNTIME" || !is_valid_runtime_name(w[1]))
        return std::nullopt;
    auto free = parse_count(w[2], max_capacity_digits);
    auto queued = parse_count(w[3], max_capacity_digits);
    if (!free || !queued)
        return std::nullopt;
    return RuntimeCapacity{w[1], *free, *queued};
}

} // namespace cloudproto
