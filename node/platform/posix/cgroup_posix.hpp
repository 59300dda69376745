// A cgroup per job, with a memory and a process limit, killed as a whole
// (the cgroup layer of containment). Works on the unified hierarchy
// (cgroup v2) when its memory and pids controllers can be enabled below
// the node, else on v1's memory and pids hierarchies, as hybrid systems
// mount them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cloudnode::platform::cgroup {

// Where this node makes its jobs' cgroups: one folder per controller
// hierarchy (one with v2, two with v1), each named after the node's pid
// so that nodes sharing a machine never meet.
struct Root {
    bool unified = false;
    std::vector<std::filesystem::path> folders;
};

// Finds and prepares the node's cgroup folders; nullopt, with `why`,
// when cgroups cannot be used here.
std::optional<Root> prepare(std::string& why);

// Removes the folders (node shutdown). Empty ones only.
void release(const Root& root);

// One job's cgroup. Made before the job starts; the job's first
// process joins it through the descriptors opened here; removed once
// every process of the job is gone.
class JobCgroup {
public:
    // Throws std::system_error when a folder or a limit cannot be
    // written.
    JobCgroup(const Root& root, const std::string& name,
              std::uint64_t memory_bytes, std::uint64_t processes);
    ~JobCgroup();
    JobCgroup(const JobCgroup&) = delete;
    JobCgroup& operator=(const JobCgroup&) = delete;

    // cgroup.procs of each folder, open for writing: a process writes
    // "0" to join.
    const std::vector<int>& join_fds() const { return join_fds_; }

    // v2: cgroup.kill, open for writing; -1 on v1.
    int kill_fd() const { return kill_fd_; }

    // v1: cgroup.procs of the pids folder, open for reading, to find
    // and kill every member; -1 on v2.
    int members_fd() const { return members_fd_; }

    // Whether the kernel killed a process of the job for memory.
    bool memory_exhausted() const;

    // Closes the descriptors and removes the folders; "" or why not.
    std::string remove();

private:
    bool unified_ = false;
    std::vector<std::filesystem::path> folders_;
    std::vector<int> join_fds_;
    int kill_fd_ = -1;
    int members_fd_ = -1;
    bool removed_ = false;
};

// Runs after fork, in the shepherd: SIGKILLs every member of the job's
// cgroup until none is left. Async-signal-safe.
void kill_members(int kill_fd, int members_fd);

} // namespace cloudnode::platform::cgroup
