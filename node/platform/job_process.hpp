// Starts one job's process tree and kills it whole. Each platform has
// its own source beside this header (posix/job_process_posix.cpp; a
// Windows one would use job objects and overlapped pipes), so that the
// executor holds no platform code.
#pragma once

#include "node/platform/containment.hpp"

#include <asio/io_context.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cloudnode::platform {

struct JobSpec {
    // argv[0] is the program's path; no search is made.
    std::vector<std::string> argv;
    std::vector<std::string> env; // NAME=value, the whole environment
    std::filesystem::path working_folder;
    std::filesystem::path script; // in working_folder, written already
    JobLimits limits;
    std::size_t slot = 0; // from 0; no two running jobs share one
};

enum class JobStream { out, err };

// How a job's process tree ended.
struct JobEnd {
    bool ran = false;     // false: the program never ran; `error` says why
    bool stopped = false; // stop() killed the program while it ran
    int exit_code = 0;
    int signal = 0; // non-zero: this signal ended the program
    bool memory_exhausted = false; // the kernel killed it for memory
    std::string error;
    int stage = 0; // where it failed to start, in the platform's terms
};

class JobProcess {
public:
    struct Handlers {
        // Bytes as the job wrote them, in order per stream.
        std::function<void(JobStream, std::string_view)> on_output;
        // Runs once, after every process of the tree is gone and both
        // streams reached their end; on_output never runs after it.
        std::function<void(JobEnd)> on_end;
    };

    // Starts the tree now, inside every layer `containment` holds. The
    // program gets an empty stdin, its own stdout and stderr pipes, and
    // no other descriptor of the node. Every failure, even one found
    // before the program could start, comes as a JobEnd through on_end,
    // never as an exception; the handlers run on `io` only, never from
    // inside the constructor. `containment` outlives the JobProcess.
    JobProcess(asio::io_context& io, const JobSpec& spec,
               const Containment& containment, Handlers handlers);

    // Stops the tree if it still runs; the handlers no longer run.
    ~JobProcess();
    JobProcess(const JobProcess&) = delete;
    JobProcess& operator=(const JobProcess&) = delete;

    // Kills every process of the tree, detached ones included. Returns
    // at once; on_end follows when the tree is gone. A no-op once the
    // tree has ended.
    void stop();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

} // namespace cloudnode::platform
