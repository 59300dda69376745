// The shepherd's side: everything here runs in a forked child of the
// node, so it keeps to async-signal-safe calls (see shepherd_posix.hpp).
//
// Without the namespaces layer the shepherd forks the program itself.
// With it, the shepherd clones a small init into new namespaces, which
// builds the job's root and then forks the program; when the program
// ends, init reports its wait status and exits, and the kernel kills
// whatever else is left in the job's PID namespace.
#include "node/platform/posix/shepherd_posix.hpp"

#include "node/platform/posix/cgroup_posix.hpp"
#include "node/platform/posix/leftovers_posix.hpp"

#include <cerrno>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cloudnode::platform::shepherd {

namespace {

using contain::Failure;

// Descriptors the shepherd keeps besides 0-3: the cgroup's.
constexpr int max_kept_fds = 8;

void close_range_of(int first, int last) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, first, last, 0) == 0)
        return;
#endif
    if (last == ~0) {
        rlimit files{};
        last = 65536;
        if (getrlimit(RLIMIT_NOFILE, &files) == 0 &&
            files.rlim_cur != RLIM_INFINITY)
            last = static_cast<int>(files.rlim_cur) - 1;
    }
    for (int fd = first; fd <= last; ++fd)
        close(fd);
}

// Closes every descriptor from `first` on, but those in `keep`.
void close_from_except(int first, const int* keep, int n) {
    int sorted[max_kept_fds];
    int count = 0;
    for (int i = 0; i < n && count < max_kept_fds; ++i) {
        if (keep[i] < first)
            continue;
        int j = count++;
        while (j > 0 && sorted[j - 1] > keep[i]) {
            sorted[j] = sorted[j - 1];
            --j;
        }
        sorted[j] = keep[i];
    }
    for (int i = 0; i < count; ++i) {
        if (sorted[i] > first)
            close_range_of(first, sorted[i] - 1);
        first = sorted[i] + 1;
    }
    close_range_of(first, ~0);
}

void set_all_dispositions(void (*handler)(int)) {
    struct sigaction action {};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig)
        sigaction(sig, &action, nullptr); // fails harmlessly for some
}

void set_disposition(int sig, void (*handler)(int)) {
    struct sigaction action {};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    sigaction(sig, &action, nullptr);
}

[[noreturn]] void report_failure(int fd, const Failure& failure) {
    (void)!write(fd, &failure, sizeof failure);
    _exit(127);
}

[[noreturn]] void fail_stage(int fd, contain::Stage stage) {
    Failure failure;
    failure.stage = stage;
    failure.error = errno;
    report_failure(fd, failure);
}

// The program's process: contained, then exec.
[[noreturn]] void run_program(const Launch& launch, int exec_w) {
    set_disposition(SIGPIPE, SIG_DFL);
    const contain::ChildPlan& plan = *launch.plan;

    if (!plan.namespaces)
        setpgid(0, 0); // one kill reaches the whole pipeline
    if (chdir(launch.working_folder) != 0)
        fail_stage(exec_w, contain::stage_chdir);
    Failure failure;
    if (!contain::restrict_program(plan, failure))
        report_failure(exec_w, failure);

    // Keep 0-2 and the exec error pipe, which closes itself on exec.
    if (dup3(exec_w, fd_status, O_CLOEXEC) < 0)
        fail_stage(exec_w, contain::stage_descriptors);
    close_range_of(fd_status + 1, ~0);

    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(launch.argv[0], launch.argv, launch.envp);
    fail_stage(fd_status, contain::stage_exec);
}

// PID 1 of the job's namespaces: builds the jail, starts the program,
// reaps whatever it leaves, and once the program is gone writes its
// wait status on `status_w` and exits, which ends the namespace.
[[noreturn]] void run_init(const Launch& launch, int exec_w, int status_w) {
    Failure failure;
    if (!contain::build_jail(*launch.plan, failure))
        report_failure(exec_w, failure);

    const pid_t program = fork();
    if (program < 0)
        fail_stage(exec_w, contain::stage_fork);
    if (program == 0) {
        close(status_w);
        run_program(launch, exec_w);
    }

    // Hold no end of the program's pipes: EOF must mean it is gone.
    close(exec_w);
    close(fd_stdin);
    close(fd_stdout);
    close(fd_stderr);
    close(fd_status);

    std::int32_t status = 0;
    for (;;) {
        int st = 0;
        const pid_t pid = waitpid(-1, &st, 0);
        if (pid == program) {
            status = st;
            break;
        }
        if (pid < 0 && errno != EINTR)
            break;
    }
    (void)!write(status_w, &status, sizeof status);
    _exit(0);
}

[[noreturn]] void finish_shepherd(int fd, const ShepherdReport& report) {
    (void)!write(fd, &report, sizeof report);
    _exit(0);
}

[[noreturn]] void fail_shepherd(int fd, contain::Stage stage) {
    ShepherdReport report;
    report.stage = stage;
    report.error = errno;
    finish_shepherd(fd, report);
}

// Puts /dev/null, the two output pipes and the status pipe on 0-3 and
// closes everything else the node had open but the cgroup's
// descriptors. Returns false on failure, with errno set.
bool lay_out_descriptors(const Launch& launch) {
    const int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0)
        return false;
    const int wanted[4] = {devnull, launch.out_w, launch.err_w,
                           launch.status_w};

    // Lift them above every descriptor kept, so no dup2 overwrites one.
    int floor = 4;
    int keep[max_kept_fds];
    int kept = 0;
    auto add = [&](int fd) {
        if (fd >= 0 && kept < max_kept_fds) {
            keep[kept++] = fd;
            floor = fd + 1 > floor ? fd + 1 : floor;
        }
    };
    for (int fd : launch.plan->cgroup_join_fds)
        add(fd);
    add(launch.cgroup_kill_fd);
    add(launch.cgroup_members_fd);

    int lifted[4];
    for (int i = 0; i < 4; ++i) {
        lifted[i] = fcntl(wanted[i], F_DUPFD, floor);
        if (lifted[i] < 0)
            return false;
    }
    for (int i = 0; i < 4; ++i) {
        if (dup2(lifted[i], i) < 0)
            return false;
    }
    close_from_except(4, keep, kept);
    return true;
}

// Reaps whatever has ended without waiting; notes the program's end.
void reap_ended(pid_t program, int& status, bool& ended) {
    int st = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == program) {
            status = st;
            ended = true;
        }
    }
}

void kill_child(pid_t pid) {
    // The child is ours and not yet reaped, so neither its pid nor a
    // group it leads can belong to anyone else.
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
}

// SIGKILLs every current child and its process group. Returns false
// when the kernel cannot list the children.
bool kill_children() {
    // thread-self: the shepherd is single-threaded, and orphans are
    // handed to it as subreaper, so this lists every child.
    const int fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;

    // "pid pid pid ", parsed across chunk edges without allocating.
    char chunk[512];
    pid_t pid = 0;
    bool in_pid = false;
    for (;;) {
        const ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        for (ssize_t i = 0; i < n; ++i) {
            if (chunk[i] >= '0' && chunk[i] <= '9') {
                pid = pid * 10 + (chunk[i] - '0');
                in_pid = true;
            } else if (in_pid) {
                kill_child(pid);
                pid = 0;
                in_pid = false;
            }
        }
        if (n <= 0)
            break;
    }
    if (in_pid)
        kill_child(pid);
    close(fd);
    return true;
}

// Kills and reaps every process below the shepherd until none is left.
void sweep(pid_t program, int& status, bool& ended) {
    for (;;) {
        // XXX: without /proc/<pid>/task/<tid>/children (a kernel built
        // without CONFIG_PROC_CHILDREN) the shepherd cannot find
        // detached processes; it reaps what has ended and leaves, and
        // the survivors outlive the job unless a uid, a cgroup or a PID
        // namespace of the job's own catches them.
        const bool listed = kill_children();

        int st = 0;
        const pid_t pid = waitpid(-1, &st, listed ? 0 : WNOHANG);
        if (pid > 0) {
            if (pid == program && !ended) {
                status = st;
                ended = true;
            }
            continue;
        }
        if (pid < 0 && errno == EINTR)
            continue;
        return; // ECHILD: nothing left below us
    }
}

// Level 2: the job's uid is its own, its folders and IPC the machine's.
bool shares_machine(const contain::ChildPlan& plan) {
    return plan.set_identity && !plan.namespaces;
}

// Everything the job may have left: by its uid, by its cgroup, then
// every process still below the shepherd; and at level 2, what its uid
// left in the folders and IPC it shared with the machine.
void kill_what_is_left(const Launch& launch, pid_t program, int& status,
                       bool& ended, const leftovers::Snapshot& before) {
    // In its own namespaces the job is gone with init already, and so
    // are its /tmp and IPC objects.
    const contain::ChildPlan& plan = *launch.plan;
    const bool shared = shares_machine(plan);
    if (shared)
        contain::kill_uid(plan.uid);
    cgroup::kill_members(launch.cgroup_kill_fd, launch.cgroup_members_fd);
    sweep(program, status, ended);
    if (shared)
        leftovers::remove(plan.uid, plan.gid, before);
}

// The job's first process: the program itself, or init in new
// namespaces. Returns its pid, 0 in the child, -1 with errno set.
pid_t start_first(const contain::ChildPlan& plan) {
    const unsigned long flags = contain::clone_flags(plan);
    if (flags == 0)
        return fork();
    // Like fork(), the child runs on a copy of this stack.
    return static_cast<pid_t>(
        syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0));
}

} // namespace

[[noreturn]] void run(const Launch& launch) {
    const contain::ChildPlan& plan = *launch.plan;

    // The node's handlers (asio's among them) must not run here.
    set_all_dispositions(SIG_DFL);
    set_disposition(SIGPIPE, SIG_IGN); // a gone node: EPIPE, not death

    // Stop when the node dies; if it died already, stop right away.
    prctl(PR_SET_PDEATHSIG, stop_signal);
    if (getppid() != launch.node)
        kill(getpid(), stop_signal); // stays pending: see the wait below

    prctl(PR_SET_CHILD_SUBREAPER, 1);
    setsid();

    if (!lay_out_descriptors(launch))
        fail_shepherd(launch.status_w, contain::stage_descriptors);

    // Signals arrive only through sigwaitinfo: no handler, no race.
    sigset_t waited;
    sigemptyset(&waited);
    sigaddset(&waited, SIGCHLD);
    sigaddset(&waited, stop_signal);
    sigprocmask(SIG_SETMASK, &waited, nullptr);

    // The exec pipe closes empty once the program has exec'd; init's
    // pipe brings the program's wait status.
    int exec_pipe[2];
    int init_pipe[2] = {-1, -1};
    if (pipe2(exec_pipe, O_CLOEXEC) != 0 ||
        (plan.namespaces && pipe2(init_pipe, O_CLOEXEC) != 0))
        fail_shepherd(fd_status, contain::stage_pipe);
    const pid_t shepherd = getpid();
    const leftovers::Snapshot before = shares_machine(plan)
                                           ? leftovers::snapshot()
                                           : leftovers::Snapshot{};
    const pid_t first = start_first(plan);
    if (first < 0)
        fail_shepherd(fd_status, plan.namespaces ? contain::stage_namespaces
                                                 : contain::stage_fork);
    if (first == 0) {
        // Dies with the shepherd, should anyone kill it outright.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!plan.namespaces && getppid() != shepherd)
            _exit(127);
        if (plan.namespaces) {
            close(init_pipe[0]);
            run_init(launch, exec_pipe[1], init_pipe[1]);
        }
        run_program(launch, exec_pipe[1]);
    }

    // Hold no end of the program's pipes: EOF must mean it is gone.
    close(exec_pipe[1]);
    if (plan.namespaces)
        close(init_pipe[1]);
    close(fd_stdin);
    close(fd_stdout);
    close(fd_stderr);
    setpgid(first, first); // whichever of the two runs first

    ShepherdReport report;
    int status = 0;
    bool ended = false;

    // The exec error pipe closes empty on a successful exec.
    Failure failure;
    ssize_t n;
    do {
        n = read(exec_pipe[0], &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    close(exec_pipe[0]);
    if (n == static_cast<ssize_t>(sizeof failure)) {
        report.stage = failure.stage;
        report.error = failure.error;
        report.detail = failure.detail;
        kill_what_is_left(launch, first, status, ended, before);
        finish_shepherd(fd_status, report);
    }

    // Wait for the program to end or for the node to say stop.
    while (!ended) {
        const int sig = sigwaitinfo(&waited, nullptr);
        if (sig == SIGCHLD) {
            reap_ended(first, status, ended);
        } else if (sig == stop_signal) {
            reap_ended(first, status, ended);
            if (!ended) {
                report.stopped = 1;
                kill_child(first);
            }
            break;
        }
    }

    kill_what_is_left(launch, first, status, ended, before);

    // Under init, the program's own status came through init's pipe.
    if (plan.namespaces && !report.stopped) {
        std::int32_t program_status = 0;
        if (read(init_pipe[0], &program_status, sizeof program_status) ==
            sizeof program_status)
            status = program_status;
    }
    report.wait_status = status;
    finish_shepherd(fd_status, report);
}

} // namespace cloudnode::platform::shepherd
