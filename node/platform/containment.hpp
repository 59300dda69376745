// How a node keeps a job from hurting it (proto-spec "Containment"):
// layers of the kernel's own mechanisms, probed once at start-up. A
// layer the machine does not allow is left out and the node says why;
// the level it reaches is announced in HELLO and recorded in every
// result. Each platform has its source beside this header
// (posix/containment_posix.cpp; a Windows one would use job objects).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cloudnode::platform {

// In the order a node tries them; `limits` is always there.
enum class Layer {
    limits,     // own session, resource limits, no new privileges
    uid,        // each slot its own unprivileged uid (node run as root)
    namespaces, // user, mount, PID, network, IPC and UTS namespaces
    cgroup,     // a cgroup per job: memory and process limits
    seccomp,    // no network sockets, no system call a job never needs
};
inline constexpr Layer all_layers[] = {Layer::limits, Layer::uid,
                                       Layer::namespaces, Layer::cgroup,
                                       Layer::seccomp};

std::string_view to_string(Layer layer);
std::optional<Layer> layer_from_string(std::string_view name);

// The spec's containment levels, from what `layers` hold:
//   1 limits only;
//   2 the job can neither read the node's files nor signal it (uid or
//     namespaces);
//   3 namespaces: it sees no other process, no network, only its folder;
//   4 namespaces, cgroup and seccomp.
int containment_level(const std::vector<Layer>& layers);
inline constexpr int max_containment_level = 4;

// A job's resource limits; 0 means none.
struct JobLimits {
    std::uint64_t memory_bytes = 0; // address space, and the cgroup's
    std::uint64_t cpu_seconds = 0;
    std::uint64_t processes = 0;    // at once, the job's first included
    std::uint64_t disk_bytes = 0;   // largest file; the folder's size
    std::uint64_t open_files = 0;
};

// What the operator asks of containment.
struct ContainmentSettings {
    std::vector<Layer> disabled; // never used, even where available
    // The node's own folders and files: a job must not see them.
    std::vector<std::filesystem::path> hidden;
    std::filesystem::path work_root; // where jobs' folders are made
    std::size_t slots = 1;
    std::uint32_t first_uid = 0; // slot i runs as first_uid + i
};

// Settings the node cannot run with; what() starts with the
// configuration key at fault ("containment.first_uid: ...").
struct SettingsError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A layer left out, and why, for the start-up log.
struct MissingLayer {
    Layer layer;
    std::string why;
};

class Containment {
public:
    // Finds which layers this machine allows, each tried for real in a
    // throwaway job, and prepares what jobs will need (a seccomp
    // program, cgroup folders). A layer that is missing is left out,
    // with why in missing(); but a node run as root never runs a job
    // as root: without the uid layer it throws, SettingsError when the
    // settings are at fault, std::runtime_error otherwise.
    static std::unique_ptr<Containment>
    probe(const ContainmentSettings& settings);

    // Only `limits`, nothing probed: for tests of other parts (as root,
    // their jobs run as root).
    static std::unique_ptr<Containment> minimal();

    ~Containment();
    Containment(const Containment&) = delete;
    Containment& operator=(const Containment&) = delete;

    const std::vector<Layer>& layers() const;
    const std::vector<MissingLayer>& missing() const;
    int level() const { return containment_level(layers()); }

    // "4 limits uid namespaces cgroup seccomp", as HELLO and reports
    // carry it.
    std::string describe() const;

    struct Impl;
    Impl& impl() const { return *impl_; }

private:
    explicit Containment(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace cloudnode::platform
