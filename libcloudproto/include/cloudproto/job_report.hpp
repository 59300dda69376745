// What a node knows of a job: the fields of a STATUS or RESULT reply
// (proto-spec section "Job reports"), also the header of a stored result.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cloudproto {

enum class JobState { queued, running, relayed, done, failed };

// How a job that ran came to an end; only meaningful in state `done`.
enum class Outcome { exited, signalled, timeout };

std::string_view to_string(JobState state);
std::string_view to_string(Outcome outcome);
std::optional<JobState> job_state_from_string(std::string_view text);
std::optional<Outcome> outcome_from_string(std::string_view text);

// A state from which a job never moves again.
bool is_final(JobState state);

using Clock = std::chrono::system_clock;

// RFC 3339 in UTC with milliseconds: 2026-12-03T17:42:01.123Z
std::string format_timestamp(Clock::time_point when);
std::optional<Clock::time_point> parse_timestamp(std::string_view text);

using Field = std::pair<std::string, std::string>;

struct JobReport {
    std::string job_id;
    JobState state = JobState::queued;
    std::string runtime;
    std::string node; // the node that holds the job, or ran it
    std::string relayed_to; // the peer this node handed the job to
    std::string trace;      // nodes a relayed job crossed: "a,b"
    std::optional<Clock::time_point> accepted;
    std::optional<Clock::time_point> started;
    std::optional<Clock::time_point> finished;
    std::optional<Outcome> outcome;
    std::optional<int> exit_code;
    std::optional<int> signal;
    std::optional<std::chrono::milliseconds> duration;
    std::uint64_t stdout_bytes = 0; // as the job produced them
    std::uint64_t stderr_bytes = 0;
    bool stdout_truncated = false;
    bool stderr_truncated = false;
    // How the node that ran it contained it: "<level> <layer> ...".
    std::string containment;
    std::string limit_hit; // "memory": a limit the kernel ended it at
    std::string error; // state `failed`: why the node could not run it
    // The result mail through a mail server: "queued", "sent" or
    // "failed" (empty: written to an outbox); why it failed.
    std::string mail;
    std::string mail_error;

    // KEY value pairs in the order the spec lists them; absent
    // optionals are left out.
    std::vector<Field> to_fields() const;

    // Reads what to_fields wrote; unknown keys are ignored, as the
    // compatibility rule asks. Returns nullopt without JOB and STATE.
    static std::optional<JobReport> from_fields(const std::vector<Field>& f);
};

// "KEY value" <-> Field. Keys are upper-case tokens; the value is the
// rest of the line after one space.
std::string format_field(const Field& field);
std::optional<Field> parse_field(std::string_view line);

} // namespace cloudproto
