// The seccomp layer of containment: one filter, built once at start-up
// with libseccomp, that every job's program loads just before exec. It
// refuses network sockets (only AF_UNIX is left) and the system calls a
// job never needs: tracing other processes, mounting, changing
// namespaces, loading kernel code or BPF, the kernel's keyrings,
// io_uring (whose operations a filter cannot see), and setting the
// clock or the host name.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <linux/filter.h>

namespace cloudnode::platform::seccomp {

struct Program {
    std::vector<sock_filter> instructions;
    sock_fprog fprog() const; // points into `instructions`
};

// The filter as classic BPF; nullopt with `why` when it cannot be made
// (built without libseccomp, or libseccomp failed).
std::optional<Program> build(std::string& why);

// Runs after fork, in the job's program: sets no_new_privs and loads
// `program`. Async-signal-safe; false with errno set.
bool load(const sock_fprog& program);

} // namespace cloudnode::platform::seccomp
