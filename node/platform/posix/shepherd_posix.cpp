// The shepherd's side: everything here runs in a forked child of the
// node, so it keeps to async-signal-safe calls (see shepherd_posix.hpp).
#include "node/platform/posix/shepherd_posix.hpp"

#include <cerrno>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cloudnode::platform::shepherd {

namespace {

void close_from(int first) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, first, ~0U, 0) == 0)
        return;
#endif
    rlimit files{};
    int last = 65536;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 &&
        files.rlim_cur != RLIM_INFINITY)
        last = static_cast<int>(files.rlim_cur);
    for (int fd = first; fd < last; ++fd)
        close(fd);
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

[[noreturn]] void fail_program(int fd, Stage stage) {
    const std::int32_t failure[2] = {stage, errno};
    (void)!write(fd, failure, sizeof failure);
    _exit(127);
}

// The program's process: the shepherd's only direct child.
[[noreturn]] void run_program(const Launch& launch, pid_t shepherd,
                              int exec_w) {
    set_disposition(SIGPIPE, SIG_DFL);

    // Dies with the shepherd, should anyone kill it outright.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != shepherd)
        _exit(127);

    // Its own process group, so one kill reaches the whole pipeline.
    setpgid(0, 0);

    if (chdir(launch.working_folder) != 0)
        fail_program(exec_w, stage_chdir);
    const rlimit no_core{0, 0};
    if (setrlimit(RLIMIT_CORE, &no_core) != 0)
        fail_program(exec_w, stage_limits);

    // Keep 0-2 and the exec error pipe, which closes itself on exec.
    if (dup3(exec_w, fd_status, O_CLOEXEC) < 0)
        fail_program(exec_w, stage_descriptors);
    close_from(fd_status + 1);

    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(launch.argv[0], launch.argv, launch.envp);
    fail_program(fd_status, stage_exec);
}

[[noreturn]] void finish_shepherd(int fd, const ShepherdReport& report) {
    (void)!write(fd, &report, sizeof report);
    _exit(0);
}

[[noreturn]] void fail_shepherd(int fd, Stage stage) {
    ShepherdReport report;
    report.stage = stage;
    report.error = errno;
    finish_shepherd(fd, report);
}

// Puts /dev/null, the two output pipes and the status pipe on 0-3 and
// closes everything else the node had open. Returns false on failure,
// with errno set.
bool lay_out_descriptors(const Launch& launch) {
    const int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0)
        return false;
    const int wanted[4] = {devnull, launch.out_w, launch.err_w,
                           launch.status_w};

    // Lift them above 0-3 first so no dup2 overwrites another.
    int lifted[4];
    for (int i = 0; i < 4; ++i) {
        lifted[i] = fcntl(wanted[i], F_DUPFD, 4);
        if (lifted[i] < 0)
            return false;
    }
    for (int i = 0; i < 4; ++i) {
        if (dup2(lifted[i], i) < 0)
            return false;
    }
    close_from(4);
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
        // the survivors outlive the job.
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

} // namespace

[[noreturn]] void run(const Launch& launch) {
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
        fail_shepherd(launch.status_w, stage_descriptors);

    // Signals arrive only through sigwaitinfo: no handler, no race.
    sigset_t waited;
    sigemptyset(&waited);
    sigaddset(&waited, SIGCHLD);
    sigaddset(&waited, stop_signal);
    sigprocmask(SIG_SETMASK, &waited, nullptr);

    int exec_pipe[2];
    if (pipe2(exec_pipe, O_CLOEXEC) != 0)
        fail_shepherd(fd_status, stage_pipe);
    const pid_t shepherd = getpid();
    const pid_t program = fork();
    if (program < 0)
        fail_shepherd(fd_status, stage_fork);
    if (program == 0)
        run_program(launch, shepherd, exec_pipe[1]);

    // Hold no end of the program's pipes: EOF must mean it is gone.
    close(exec_pipe[1]);
    close(fd_stdin);
    close(fd_stdout);
    close(fd_stderr);
    setpgid(program, program); // whichever of the two runs first

    ShepherdReport report;
    int status = 0;
    bool ended = false;

    // The exec error pipe closes empty on a successful exec.
    std::int32_t failure[2];
    ssize_t n;
    do {
        n = read(exec_pipe[0], failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    close(exec_pipe[0]);
    if (n == static_cast<ssize_t>(sizeof failure)) {
        report.stage = failure[0];
        report.error = failure[1];
        sweep(program, status, ended);
        finish_shepherd(fd_status, report);
    }

    // Wait for the program to end or for the node to say stop.
    while (!ended) {
        const int sig = sigwaitinfo(&waited, nullptr);
        if (sig == SIGCHLD) {
            reap_ended(program, status, ended);
        } else if (sig == stop_signal) {
            reap_ended(program, status, ended);
            if (!ended) {
                report.stopped = 1;
                kill(-program, SIGKILL);
                kill(program, SIGKILL);
            }
            break;
        }
    }

    sweep(program, status, ended);
    report.wait_status = status;
    finish_shepherd(fd_status, report);
}

} // namespace cloudnode::platform::shepherd
