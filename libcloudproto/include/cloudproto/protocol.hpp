// Constants of the cloudproto norm, version 1 (proto-spec/cloudproto-v1.md).
// Every number a peer can meet is named here once, with its unit.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cloudproto {

inline constexpr int protocol_version = 1;
inline constexpr std::string_view protocol_name = "cloudproto/1";

// Registered nowhere; "CLOUD" on a phone keypad.
inline constexpr std::uint16_t default_port = 25683;

// A command or reply line, CRLF included (as SMTP's 1000).
inline constexpr std::size_t max_line_bytes = 1000;

// Job identifiers: letters, digits, '-' and '_' (spec section "Job identifiers").
inline constexpr std::size_t min_job_id_bytes = 16;
inline constexpr std::size_t max_job_id_bytes = 64;

// Node-side defaults an operator may change in the configuration.
inline constexpr std::size_t default_max_job_bytes = 1024 * 1024;
inline constexpr std::size_t default_max_output_bytes = 1024 * 1024;
inline constexpr std::chrono::seconds default_job_timeout{60};
inline constexpr std::chrono::seconds default_max_job_timeout{3600};
inline constexpr std::chrono::seconds default_idle_timeout{300};
inline constexpr std::chrono::seconds max_wait_timeout{3600};

// Descriptor limits that are part of the norm, not a node's choice.
inline constexpr std::size_t max_args = 256;
inline constexpr std::size_t max_arg_bytes = 4096;
inline constexpr std::size_t max_address_bytes = 254;
inline constexpr std::size_t max_runtime_name_bytes = 32;

namespace reply_code {
inline constexpr int help = 214;
inline constexpr int greeting = 220;
inline constexpr int closing = 221;
inline constexpr int ok = 250;
inline constexpr int unavailable = 421;
inline constexpr int job_not_finished = 450;
inline constexpr int local_error = 451;
inline constexpr int insufficient_storage = 452;
inline constexpr int syntax_error = 500;
inline constexpr int parameter_error = 501;
inline constexpr int bad_sequence = 503;
inline constexpr int peer_required = 530;
inline constexpr int no_such_job = 550;
inline constexpr int job_too_large = 552;
inline constexpr int descriptor_rejected = 553;
inline constexpr int runtime_not_offered = 554;
inline constexpr int parameter_not_recognised = 555;
inline constexpr int job_id_conflict = 556;
inline constexpr int would_loop = 557;
} // namespace reply_code

} // namespace cloudproto
