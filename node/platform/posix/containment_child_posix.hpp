// What a job's first processes do, between fork and exec, to shut
// themselves in: the child side of containment. Everything is decided
// and laid out in a ChildPlan before the fork (paths, mount steps,
// limits, the seccomp program, cgroup descriptors); after it, the code
// here only reads the plan and makes system calls, since the node has
// other threads and a forked child may not allocate or take a lock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <linux/filter.h>
#include <sys/resource.h>
#include <sys/types.h>

namespace cloudnode::platform::contain {

// Where a start-up step failed, as the shepherd reports it; the probe
// turns each into the layer at fault.
enum Stage : std::int32_t {
    stage_ran = 0,
    stage_descriptors,
    stage_pipe,
    stage_fork,
    stage_chdir,
    stage_limits,
    stage_exec,
    stage_cgroup,         // joining the job's cgroup
    stage_namespaces,     // clone() into new namespaces
    stage_user_map,       // the new user namespace's uid and gid maps
    stage_mount,          // building the job's root (detail: the step)
    stage_script,         // copying the script into the job's folder
    stage_pivot,          // pivot_root into the job's root
    stage_proc,           // mounting /proc for the new PID namespace
    stage_network,        // bringing loopback up
    stage_identity,       // becoming the slot's uid and gid
    stage_user_namespace, // the program's own user namespace (root)
    stage_seccomp,        // loading the filter
};

// One step of building the job's root before pivot_root. Targets are
// full paths under the new root as the node sees it.
struct MountStep {
    enum class Kind {
        directory,  // mkdir, mode 0755; one that exists is fine
        file,       // an empty file to bind a device or /dev/null on
        symlink,    // `source` is the link's text
        bind,       // `source` onto `target`, with what is below it
        tmpfs,      // `options` is the data: "size=...,mode=..."
        read_only,  // remount a bind read-only, keeping `flags`
    };
    Kind kind;
    std::string source;
    std::string target;
    std::string options;
    unsigned long flags = 0;

    static MountStep directory(std::string target) {
        return {Kind::directory, {}, std::move(target), {}, 0};
    }
    static MountStep file(std::string target) {
        return {Kind::file, {}, std::move(target), {}, 0};
    }
    static MountStep symlink(std::string text, std::string target) {
        return {Kind::symlink, std::move(text), std::move(target), {}, 0};
    }
    static MountStep bind(std::string source, std::string target) {
        return {Kind::bind, std::move(source), std::move(target), {}, 0};
    }
    static MountStep tmpfs(std::string target, std::string options,
                           unsigned long flags) {
        return {Kind::tmpfs, {}, std::move(target), std::move(options), flags};
    }
    static MountStep read_only(std::string target, unsigned long flags) {
        return {Kind::read_only, {}, std::move(target), {}, flags};
    }
};

struct Limit {
    int resource; // RLIMIT_*
    rlimit value;
};

struct ChildPlan {
    // The job's folder (its working directory) and the script in it,
    // as the executor wrote them.
    std::string folder;
    std::string staged_script;

    // Resource limits the program gets.
    std::vector<Limit> limits;

    // uid layer: the program runs as `uid`:`gid` (node run as root).
    bool set_identity = false;
    uid_t uid = 0;
    gid_t gid = 0;

    // cgroup layer: "0" goes to each, so the process joins.
    std::vector<int> cgroup_join_fds;

    // namespaces layer.
    bool namespaces = false;
    bool own_user_namespace = false; // node not root: made with the rest
    std::string uid_map;             // "<inner> <outer> 1"
    std::string gid_map;
    std::string new_root;            // where the root is built
    std::string old_root;            // under new_root, for pivot_root
    std::vector<MountStep> steps;
    std::string script_in_root;      // the script's copy, as built
    std::string proc_in_root;        // where the job's /proc goes
    std::string root_options;        // the root tmpfs's data

    // seccomp layer.
    std::optional<sock_fprog> filter;
};

// A failure's last words on the error pipe: small enough for a single
// atomic pipe write.
struct Failure {
    std::int32_t stage = stage_ran;
    std::int32_t error = 0;  // errno
    std::int32_t detail = 0; // stage_mount: which step
};

// The namespaces a clone() for this plan makes, 0 when it makes none.
unsigned long clone_flags(const ChildPlan& plan);

// Runs in the job's first process inside its new namespaces (PID 1
// there): maps, root, loopback, host name. Returns false with
// `failure` filled.
bool build_jail(const ChildPlan& plan, Failure& failure);

// Runs in the program's process just before exec: cgroup (outside
// namespaces), limits, identity, own user namespace, seccomp. Returns
// false with `failure` filled.
bool restrict_program(const ChildPlan& plan, Failure& failure);

// Joins the cgroup; false with errno set.
bool join_cgroups(const ChildPlan& plan);

// Runs in the shepherd once the program has ended: as the slot's uid,
// SIGKILLs every process that uid still runs. Async-signal-safe.
void kill_uid(uid_t uid);

} // namespace cloudnode::platform::contain
