// The POSIX side of Containment: what the probe found and prepared, and
// how it turns one job into a ChildPlan.
#pragma once

#include "node/platform/containment.hpp"
#include "node/platform/posix/cgroup_posix.hpp"
#include "node/platform/posix/containment_child_posix.hpp"
#include "node/platform/posix/seccomp_posix.hpp"

#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace cloudnode::platform {

struct JobSpec;

struct Containment::Impl {
    ContainmentSettings settings;
    std::vector<Layer> layers;
    std::vector<MissingLayer> missing;

    bool has(Layer layer) const;

    bool node_is_root = false;
    uid_t node_uid = 0;
    gid_t node_gid = 0;
    int uid_lock = -1; // uid layer: holds the slots' uids (slot_uids)

    std::optional<cgroup::Root> cgroups;    // cgroup layer
    std::optional<seccomp::Program> filter; // seccomp layer
    // namespaces layer: the steps every job's root starts with (system
    // folders bound read-only, the node's own folders covered), under
    // new_root; the covers, made read-only once the job's folder is in.
    std::string new_root;
    std::vector<contain::MountStep> root_steps;
    std::vector<std::string> root_covers;

    ~Impl();

    // The plan for one job; `cgroup` is its cgroup when the layer is
    // on.
    contain::ChildPlan plan(const JobSpec& spec,
                            const cgroup::JobCgroup* cgroup) const;

    // The uid and gid of `slot` (uid layer).
    uid_t slot_uid(std::size_t slot) const;
};

} // namespace cloudnode::platform
