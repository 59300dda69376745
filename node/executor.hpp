// Runs one job's script in a fresh working folder, captures its output
// under a cap, enforces its wall-clock timeout, and makes sure nothing
// it started outlives it.
#pragma once

#include "node/platform/containment.hpp"

#include "cloudproto/job_report.hpp"

#include <asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cloudnode {

struct ExecutionRequest {
    std::string job_id;
    // The runtime's command line with the descriptor's args appended;
    // every element equal to "{script}" becomes the script's path.
    std::vector<std::string> command;
    std::string script;      // the script's bytes, written unchanged
    std::string script_name; // file name in the working folder: job.sh
    std::chrono::milliseconds timeout{0};
    std::size_t max_output_bytes = 0; // per stream; the rest is counted
    platform::JobLimits limits;
    std::size_t slot = 0; // no two running jobs share one
};

struct CapturedOutput {
    std::string bytes;       // at most max_output_bytes
    std::uint64_t total = 0; // what the job wrote
    bool truncated() const { return total > bytes.size(); }
};

struct ExecutionResult {
    // failed_to_start: the node could not run it (`error` says why).
    enum class Kind { finished, failed_to_start };
    Kind kind = Kind::finished;
    cloudproto::Outcome outcome = cloudproto::Outcome::exited;
    int exit_code = 0; // outcome exited
    int signal = 0;    // outcome signalled
    cloudproto::Clock::time_point started;
    cloudproto::Clock::time_point finished;
    std::chrono::milliseconds duration{0};
    CapturedOutput out;
    CapturedOutput err;
    bool memory_exhausted = false; // killed by the kernel for memory
    std::string error;
};

class Executor {
public:
    using Done = std::function<void(ExecutionResult)>;

    // Working folders are made under `work_root`, one per job; those a
    // previous run left behind are removed. Jobs run inside every layer
    // of `containment`, which outlives the executor.
    Executor(asio::io_context& io, std::filesystem::path work_root,
             const platform::Containment& containment);
    ~Executor();
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    // Starts the job now. `done` runs once on `io`, after every process
    // of the job is gone and its working folder removed.
    void run(ExecutionRequest request, Done done);

    // Kills every running job (node shutdown); their `done` still runs.
    void stop_all();

    std::size_t running() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace cloudnode
