// The shepherd: the small per-job process a POSIX node forks (see
// job_process_posix.cpp). What the node and the shepherd share: the
// descriptors it lays out, the report it writes, the signal that stops it.
#pragma once

#include "node/platform/posix/containment_child_posix.hpp"

#include <cstdint>

#include <signal.h>
#include <sys/types.h>

namespace cloudnode::platform::shepherd {

// The shepherd's last words on its status pipe, written once just
// before it exits: small enough for a single atomic pipe write.
struct ShepherdReport {
    std::int32_t stage = contain::stage_ran;
    std::int32_t error = 0;       // errno of a failed stage
    std::int32_t detail = 0;      // which step of that stage
    std::int32_t wait_status = 0; // the program's, from waitpid
    std::int32_t stopped = 0;     // 1: killed on the node's request
};

// Descriptors as the shepherd lays them out; the program keeps 0-2.
constexpr int fd_stdin = 0;
constexpr int fd_stdout = 1;
constexpr int fd_stderr = 2;
constexpr int fd_status = 3;

// The node asks a shepherd to stop with this signal; the kernel sends
// it too when the node dies.
constexpr int stop_signal = SIGTERM;

// What the node prepares before the fork. The node may have other
// threads, so after fork nothing may allocate or take a lock: no malloc,
// no fmt, no iostreams, only system calls on data prepared before.
struct Launch {
    char* const* argv;
    char* const* envp;
    const char* working_folder;
    pid_t node;
    int out_w;
    int err_w;
    int status_w;
    const contain::ChildPlan* plan;
    // cgroup layer: the shepherd kills what is left in the job's cgroup
    // through these (-1: none); uid layer: and what plan->uid runs.
    int cgroup_kill_fd;
    int cgroup_members_fd;
};

// Runs in the child of fork(): starts the program (in new namespaces,
// under a small init, when the plan says so), waits for it (or for
// stop_signal), kills and reaps everything below, writes a ShepherdReport
// on fd_status and exits.
[[noreturn]] void run(const Launch& launch);

} // namespace cloudnode::platform::shepherd
