// Runs in forked children only: system calls on the prepared plan, no
// allocation, no lock (see containment_child_posix.hpp).
#include "node/platform/posix/containment_child_posix.hpp"

#include "node/platform/posix/seccomp_posix.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cloudnode::platform::contain {

namespace {

constexpr char job_host_name[] = "job";

bool fail(Failure& f, Stage stage, std::int32_t detail = 0) {
    f.stage = stage;
    f.error = errno;
    f.detail = detail;
    return false;
}

bool write_text(const char* path, const char* text) {
    const int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    const std::size_t n = std::strlen(text);
    const bool ok = write(fd, text, n) == static_cast<ssize_t>(n);
    const int error = errno;
    close(fd);
    errno = error;
    return ok;
}

// The maps of a user namespace this process has just entered: its own
// uid and gid, and no supplementary groups.
bool map_self(const ChildPlan& plan) {
    return write_text("/proc/self/setgroups", "deny") &&
           write_text("/proc/self/uid_map", plan.uid_map.c_str()) &&
           write_text("/proc/self/gid_map", plan.gid_map.c_str());
}

bool run_step(const MountStep& s) {
    const char* target = s.target.c_str();
    switch (s.kind) {
    case MountStep::Kind::directory:
        return mkdir(target, 0755) == 0 || errno == EEXIST;
    case MountStep::Kind::file: {
        const int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return errno == EEXIST;
        close(fd);
        return true;
    }
    case MountStep::Kind::symlink:
        return symlink(s.source.c_str(), target) == 0;
    case MountStep::Kind::bind:
        return mount(s.source.c_str(), target, nullptr, MS_BIND | MS_REC,
                     nullptr) == 0;
    case MountStep::Kind::tmpfs:
        return mount("tmpfs", target, "tmpfs", s.flags,
                     s.options.c_str()) == 0;
    case MountStep::Kind::read_only:
        return mount(nullptr, target, nullptr,
                     MS_REMOUNT | MS_BIND | MS_RDONLY | s.flags,
                     nullptr) == 0;
    }
    return false;
}

bool copy_all(int from, int to) {
    char buffer[16 * 1024];
    for (;;) {
        ssize_t n = read(from, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(to, buffer + done,
                              static_cast<std::size_t>(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return false;
            done += w;
        }
    }
}

// The script goes from the node's staging folder into the job's own
// tmpfs, owned by the job.
bool copy_script(const ChildPlan& plan, int staged) {
    const int fd = open(plan.script_in_root.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    if (fd < 0)
        return false;
    bool ok = copy_all(staged, fd);
    if (ok && plan.set_identity)
        ok = fchown(fd, plan.uid, plan.gid) == 0;
    const int error = errno;
    close(fd);
    errno = error;
    return ok;
}

// The job's root: a tmpfs with the system's programs bound read-only,
// its own /dev, /tmp and folder, nothing of the node; then pivot_root
// into it, and the old root let go.
bool build_root(const ChildPlan& plan, Failure& f) {
    // Nothing mounted here may show outside.
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return fail(f, stage_mount, -1);

    // Read before the staging folder is out of sight.
    const int staged = open(plan.staged_script.c_str(), O_RDONLY | O_CLOEXEC);
    if (staged < 0)
        return fail(f, stage_script);

    if (mount("tmpfs", plan.new_root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
              plan.root_options.c_str()) != 0)
        return fail(f, stage_mount, -2);
    for (std::size_t i = 0; i < plan.steps.size(); ++i) {
        if (!run_step(plan.steps[i]))
            return fail(f, stage_mount, static_cast<std::int32_t>(i));
    }
    const bool copied = copy_script(plan, staged);
    close(staged);
    if (!copied)
        return fail(f, stage_script);

    // While the node's /proc is still in view: a user namespace may mount
    // a proc only where one is fully visible already.
    if (mount("proc", plan.proc_in_root.c_str(), "proc",
              MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
        return fail(f, stage_proc);

    if (mkdir(plan.old_root.c_str(), 0700) != 0 ||
        syscall(SYS_pivot_root, plan.new_root.c_str(),
                plan.old_root.c_str()) != 0)
        return fail(f, stage_pivot);
    // old_root, seen from the new root: its last component.
    const char* old = std::strrchr(plan.old_root.c_str(), '/');
    if (chdir("/") != 0 || umount2(old, MNT_DETACH) != 0 || rmdir(old) != 0)
        return fail(f, stage_pivot);

    if (mount(nullptr, "/", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID |
                                         MS_NODEV,
              plan.root_options.c_str()) != 0)
        return fail(f, stage_mount, -3);
    return true;
}

// A new network namespace has only loopback, and that is down.
bool loopback_up() {
    const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, "lo", 3);
    bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    ok = ok && ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    const int error = errno;
    close(s);
    errno = error;
    return ok;
}

} // namespace

unsigned long clone_flags(const ChildPlan& plan) {
    if (!plan.namespaces)
        return 0;
    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                          CLONE_NEWIPC | CLONE_NEWUTS;
    if (plan.own_user_namespace)
        flags |= CLONE_NEWUSER;
    return flags;
}

bool join_cgroups(const ChildPlan& plan) {
    for (int fd : plan.cgroup_join_fds) {
        if (write(fd, "0", 1) != 1)
            return false;
    }
    return true;
}

bool build_jail(const ChildPlan& plan, Failure& f) {
    if (!join_cgroups(plan))
        return fail(f, stage_cgroup);
    if (plan.own_user_namespace && !map_self(plan))
        return fail(f, stage_user_map);
    if (!build_root(plan, f))
        return false;
    if (!loopback_up())
        return fail(f, stage_network);
    if (sethostname(job_host_name, sizeof job_host_name - 1) != 0)
        return fail(f, stage_network);
    return true;
}

bool restrict_program(const ChildPlan& plan, Failure& f) {
    if (!plan.namespaces && !join_cgroups(plan))
        return fail(f, stage_cgroup);
    for (const auto& limit : plan.limits) {
        if (setrlimit(static_cast<__rlimit_resource>(limit.resource),
                      &limit.value) != 0)
            return fail(f, stage_limits, limit.resource);
    }

    if (plan.set_identity) {
        if (setgroups(0, nullptr) != 0 ||
            setresgid(plan.gid, plan.gid, plan.gid) != 0 ||
            setresuid(plan.uid, plan.uid, plan.uid) != 0)
            return fail(f, stage_identity);
        // A user namespace of its own, as the namespaces layer promises;
        // /proc/self stays ours to write only while dumpable.
        if (plan.namespaces &&
            (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 ||
             unshare(CLONE_NEWUSER) != 0 || !map_self(plan)))
            return fail(f, stage_user_namespace);
    }

    if (plan.filter) {
        if (!seccomp::load(*plan.filter))
            return fail(f, stage_seccomp);
    } else if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return fail(f, stage_limits);
    }
    return true;
}

void kill_uid(uid_t uid) {
    const pid_t pid = fork();
    if (pid == 0) {
        // kill(-1) reaches every process this uid may signal: all of
        // the uid's, and never the caller itself.
        if (setresuid(uid, uid, uid) == 0)
            kill(-1, SIGKILL);
        _exit(0);
    }
    if (pid > 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

} // namespace cloudnode::platform::contain
