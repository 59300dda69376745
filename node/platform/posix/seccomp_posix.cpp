#include "node/platform/posix/seccomp_posix.hpp"

#include <cerrno>
#include <stdexcept>
#include <system_error>

#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <unistd.h>

#if CLOUDPROTO_HAVE_SECCOMP
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#endif

namespace cloudnode::platform::seccomp {

sock_fprog Program::fprog() const {
    sock_fprog p{};
    p.len = static_cast<unsigned short>(instructions.size());
    p.filter = const_cast<sock_filter*>(instructions.data());
    return p;
}

#if CLOUDPROTO_HAVE_SECCOMP
namespace {

// Refused with EPERM, so that a job sees a plain error it can report.
constexpr const char* refused_calls[] = {
    // other processes and the kernel's own state
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    "kcmp", "perf_event_open", "bpf", "userfaultfd", "keyctl", "add_key",
    "request_key", "syslog", "acct", "quotactl", "lookup_dcookie",
    "fanotify_init", "nfsservctl", "uselib",
    // mounts and namespaces
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "open_by_handle_at", "name_to_handle_at",
    // the machine
    "reboot", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "swapon", "swapoff", "iopl", "ioperm",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "vhangup",
    // a second way into the kernel that a filter cannot inspect
    "io_uring_setup", "io_uring_enter", "io_uring_register",
};

// clone() may make threads and processes, never namespaces.
constexpr unsigned long namespace_flags[] = {
    CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,   CLONE_NEWNET,
    CLONE_NEWIPC,  CLONE_NEWUTS, CLONE_NEWCGROUP,
};

struct Context {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    ~Context() {
        if (ctx)
            seccomp_release(ctx);
    }
};

void check(int rc, const char* what) {
    if (rc < 0)
        throw std::system_error(-rc, std::system_category(), what);
}

std::vector<sock_filter> export_bpf(scmp_filter_ctx ctx) {
    int fd = memfd_create("cloudproto-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        throw std::system_error(errno, std::system_category(), "memfd");
    std::vector<sock_filter> out;
    int rc = seccomp_export_bpf(ctx, fd);
    off_t size = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
    if (size > 0 && size % sizeof(sock_filter) == 0) {
        out.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
        if (pread(fd, out.data(), static_cast<std::size_t>(size), 0) != size)
            out.clear();
    }
    close(fd);
    if (out.empty())
        throw std::runtime_error("libseccomp exported no program");
    return out;
}

} // namespace

std::optional<Program> build(std::string& why) {
    try {
        Context c;
        if (!c.ctx)
            throw std::runtime_error("seccomp_init failed");
        const auto deny = SCMP_ACT_ERRNO(EPERM);
        for (const char* name : refused_calls) {
            int nr = seccomp_syscall_resolve_name(name);
            if (nr != __NR_SCMP_ERROR) // unknown to this architecture
                check(seccomp_rule_add(c.ctx, deny, nr, 0), name);
        }
        check(seccomp_rule_add(c.ctx, deny, SCMP_SYS(socket), 1,
                               SCMP_A0(SCMP_CMP_NE, AF_UNIX)),
              "socket");
        for (unsigned long flag : namespace_flags)
            check(seccomp_rule_add(c.ctx, deny, SCMP_SYS(clone), 1,
                                   SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)),
                  "clone");
        // clone3's flags sit in memory a filter cannot read; ENOSYS makes
        // the C library fall back to clone, which is checked above.
        check(seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(ENOSYS),
                               SCMP_SYS(clone3), 0),
              "clone3");
        return Program{export_bpf(c.ctx)};
    } catch (const std::exception& e) {
        why = std::string("cannot build the seccomp filter: ") + e.what();
        return std::nullopt;
    }
}
#else
std::optional<Program> build(std::string& why) {
    why = "built without libseccomp";
    return std::nullopt;
}
#endif

bool load(const sock_fprog& program) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return false;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) == 0;
}

} // namespace cloudnode::platform::seccomp
