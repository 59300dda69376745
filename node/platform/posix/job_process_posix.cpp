// Job processes on Linux. The node forks one small "shepherd" per job:
// a copy of the node that never execs. The shepherd starts the program
// in a new session, becomes the subreaper of everything the program
// starts, and once the program ends (or the node asks it to stop) kills
// and reaps every process left below it, detached ones included. Only
// then does it report the program's wait status and exit, so the node
// knows the whole tree is gone once the shepherd is.
//
// Containment (containment_posix.cpp) is laid out in a ChildPlan before
// the fork and applied by the shepherd's children between fork and exec
// (containment_child_posix.cpp).
//
// With neither the uid nor the namespaces layer, the program runs as
// the node's user and may signal its shepherd. If it kills it, the
// shepherd's orphans come to the node, its subreaper, which kills them
// (subreaper_posix.cpp), and the job ends "without a report" once its
// output pipes close, or a short grace after the shepherd is gone. If
// it stops it, the node kills the shepherd when a stop goes unheeded.
//
// The kernel's parent-death signal follows the thread that forked, so
// jobs must be started from the event loop's thread, which lives as
// long as the node.
#include "node/platform/job_process.hpp"

#include "node/platform/posix/containment_posix.hpp"
#include "node/platform/posix/shepherd_posix.hpp"
#include "node/platform/posix/subreaper_posix.hpp"

#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cloudnode::platform {
namespace {

using namespace shepherd;
using namespace contain;

constexpr std::size_t read_chunk_bytes = 64 * 1024;

// Once the shepherd is gone, the job's output pipes get this long to
// reach their end; a process that escaped with a write end (a killed
// shepherd's orphan) cannot hold the job past it.
constexpr std::chrono::milliseconds output_grace{250};
// Then what is already in a pipe is read, at most this much.
constexpr std::size_t max_drain_bytes = 1024 * 1024;

// A shepherd asked to stop and still there after this long (stopped
// by the job, or stuck) is killed outright.
constexpr std::chrono::seconds stop_grace{2};

// A pipe whose ends close themselves unless handed on. Close-on-exec,
// so that programs the node starts by other means never hold it.
struct Pipe {
    Pipe() = default;
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
    ~Pipe() {
        close_write();
        if (read >= 0)
            close(read);
    }

    bool open() {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0)
            return false;
        read = fds[0];
        write = fds[1];
        return true;
    }
    void close_write() {
        if (write >= 0)
            close(std::exchange(write, -1));
    }
    int take_read() { return std::exchange(read, -1); }

    int read = -1;
    int write = -1;
};

// Forks the shepherd with every signal blocked, so that none reaches a
// handler of the node inside it before it resets them, and records it
// as a known child of the node. Returns its pid or -1 with errno set.
pid_t fork_shepherd(const Launch& launch) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    auto held = subreaper::hold_shepherds();
    const pid_t pid = fork();
    if (pid == 0)
        shepherd::run(launch);
    const int fork_error = errno;
    if (pid > 0)
        subreaper::add_shepherd(pid);
    held.unlock();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = fork_error;
    return pid;
}

std::string errno_text(int error) {
    return std::system_category().message(error);
}

std::string describe_wait_status(int status) {
    if (WIFSIGNALED(status))
        return "killed by signal " + std::to_string(WTERMSIG(status));
    return "exit code " + std::to_string(WEXITSTATUS(status));
}

std::string describe_failure(const ShepherdReport& report,
                             const std::string& program) {
    const std::string why = errno_text(report.error);
    switch (report.stage) {
    case stage_chdir:
        return "cannot enter the working folder: " + why;
    case stage_limits:
        return "cannot set resource limits: " + why;
    case stage_exec:
        return "cannot execute " + program + ": " + why;
    case stage_fork:
        return "cannot fork the program: " + why;
    case stage_cgroup:
        return "cannot join the job's cgroup: " + why;
    case stage_namespaces:
        return "cannot create the job's namespaces: " + why;
    case stage_user_map:
        return "cannot map the job's user namespace: " + why;
    case stage_mount:
        return "cannot build the job's root (step " +
               std::to_string(report.detail) + "): " + why;
    case stage_script:
        return "cannot copy the script into the job's folder: " + why;
    case stage_pivot:
        return "cannot enter the job's root: " + why;
    case stage_proc:
        return "cannot mount /proc for the job: " + why;
    case stage_network:
        return "cannot set up the job's network namespace: " + why;
    case stage_identity:
        return "cannot switch to the slot's uid: " + why;
    case stage_user_namespace:
        return "cannot give the program its user namespace: " + why;
    case stage_seccomp:
        return "cannot load the seccomp filter: " + why;
    default:
        return "cannot prepare the job's process: " + why;
    }
}

} // namespace

struct JobProcess::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io, const Containment& containment)
        : io(io), containment(containment.impl()), out(io), err(io),
          status(io), exit_watch(io), output_timer(io), stop_timer(io) {}
    ~Impl();

    void start(const JobSpec& spec);
    bool prepare_containment(const JobSpec& spec, std::string& error);
    void fail_early(std::string error);
    void read_output(asio::posix::stream_descriptor& stream,
                     std::array<char, read_chunk_bytes>& buffer,
                     JobStream which);
    void read_status();
    void watch_exit();
    void on_shepherd_gone(int wait_status, bool reaped_here);
    void close_output();
    void part_done();
    JobEnd make_end() const;
    void stop();

    asio::io_context& io;
    const Containment::Impl& containment;
    std::optional<cgroup::JobCgroup> cgroup;
    Handlers handlers;
    bool detached = false; // the JobProcess is gone: run no handler
    std::string program;

    pid_t shepherd = -1;
    bool reaped = false;
    int shepherd_status = 0;
    bool killed_shepherd = false; // stop() went unheeded

    asio::posix::stream_descriptor out;
    asio::posix::stream_descriptor err;
    asio::posix::stream_descriptor status;
    asio::posix::stream_descriptor exit_watch; // the shepherd's pidfd
    asio::steady_timer output_timer;           // output_grace
    asio::steady_timer stop_timer;             // stop_grace
    std::array<char, read_chunk_bytes> out_buffer;
    std::array<char, read_chunk_bytes> err_buffer;

    ShepherdReport report;
    std::size_t report_bytes = 0;

    // Out EOF, err EOF, report read, shepherd reaped.
    int parts_left = 4;
};

JobProcess::Impl::~Impl() {
    // Only when the io_context dies first: make the shepherd sweep; it
    // stays a zombie until the node exits.
    if (shepherd > 0 && !reaped)
        kill(shepherd, stop_signal);
}

void JobProcess::Impl::fail_early(std::string error) {
    parts_left = 0;
    if (cgroup)
        cgroup->remove();
    asio::post(io, [self = shared_from_this(), error = std::move(error)] {
        JobEnd end;
        end.error = error;
        auto on_end = std::move(self->handlers.on_end);
        self->handlers = {};
        if (on_end && !self->detached)
            on_end(std::move(end));
    });
}

// The job's cgroup, and its folder given to the slot's uid when the job
// runs in the node's own file system.
bool JobProcess::Impl::prepare_containment(const JobSpec& spec,
                                           std::string& error) {
    if (containment.has(Layer::cgroup)) {
        try {
            cgroup.emplace(*containment.cgroups,
                           "job-" + std::to_string(spec.slot),
                           spec.limits.memory_bytes, spec.limits.processes);
        } catch (const std::system_error& e) {
            error = std::string("cannot make the job's cgroup: ") + e.what();
            return false;
        }
    }
    if (containment.has(Layer::uid) && !containment.has(Layer::namespaces)) {
        const uid_t uid = containment.slot_uid(spec.slot);
        for (const auto& path : {spec.working_folder, spec.script}) {
            if (chown(path.c_str(), uid, uid) != 0) {
                error = "cannot give " + path.string() +
                        " to the slot's uid: " + errno_text(errno);
                return false;
            }
        }
    }
    return true;
}

void JobProcess::Impl::start(const JobSpec& spec) {
    if (spec.argv.empty())
        return fail_early("empty command");
    program = spec.argv.front();
    std::string error;
    if (!prepare_containment(spec, error))
        return fail_early(std::move(error));
    const ChildPlan plan = containment.plan(spec, cgroup ? &*cgroup : nullptr);

    // Everything the children need, ready before the fork.
    std::vector<char*> argv;
    for (const auto& arg : spec.argv)
        argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& var : spec.env)
        envp.push_back(const_cast<char*>(var.c_str()));
    envp.push_back(nullptr);
    const std::string folder = spec.working_folder.string();

    subreaper::become();
    Pipe out_pipe, err_pipe, status_pipe;
    if (!out_pipe.open() || !err_pipe.open() || !status_pipe.open())
        return fail_early("cannot create a pipe: " + errno_text(errno));

    const pid_t pid = fork_shepherd({
        .argv = argv.data(),
        .envp = envp.data(),
        .working_folder = folder.c_str(),
        .node = getpid(),
        .out_w = out_pipe.write,
        .err_w = err_pipe.write,
        .status_w = status_pipe.write,
        .plan = &plan,
        .cgroup_kill_fd = cgroup ? cgroup->kill_fd() : -1,
        .cgroup_members_fd = cgroup ? cgroup->members_fd() : -1,
    });
    if (pid < 0)
        return fail_early("cannot fork: " + errno_text(errno));
    shepherd = pid;
    out_pipe.close_write();
    err_pipe.close_write();
    status_pipe.close_write();

    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
        // XXX: only on kernels before 5.3 or out of descriptors; the
        // event loop blocks here until the shepherd has swept.
        const std::string why = errno_text(errno);
        kill(pid, stop_signal);
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        reaped = true;
        subreaper::forget_shepherd(pid);
        return fail_early("cannot watch the job's process: " + why);
    }
    exit_watch.assign(pidfd);
    out.assign(out_pipe.take_read());
    err.assign(err_pipe.take_read());
    status.assign(status_pipe.take_read());

    read_output(out, out_buffer, JobStream::out);
    read_output(err, err_buffer, JobStream::err);
    read_status();
    watch_exit();
}

void JobProcess::Impl::read_output(asio::posix::stream_descriptor& stream,
                                   std::array<char, read_chunk_bytes>& buffer,
                                   JobStream which) {
    stream.async_read_some(
        asio::buffer(buffer), [self = shared_from_this(), &stream, &buffer,
                               which](std::error_code ec, std::size_t n) {
            if (n > 0 && !self->detached && self->handlers.on_output)
                self->handlers.on_output(which, {buffer.data(), n});
            if (ec) {
                // EOF: every process holding the write end is gone.
                std::error_code ignored;
                stream.close(ignored);
                return self->part_done();
            }
            self->read_output(stream, buffer, which);
        });
}

void JobProcess::Impl::read_status() {
    auto* into = reinterpret_cast<char*>(&report) + report_bytes;
    status.async_read_some(
        asio::buffer(into, sizeof report - report_bytes),
        [self = shared_from_this()](std::error_code ec, std::size_t n) {
            self->report_bytes += n;
            if (!ec && self->report_bytes < sizeof self->report)
                return self->read_status();
            std::error_code ignored;
            self->status.close(ignored);
            self->part_done();
        });
}

void JobProcess::Impl::watch_exit() {
    exit_watch.async_wait(
        asio::posix::descriptor_base::wait_read,
        [self = shared_from_this()](std::error_code ec) {
            // A pidfd turns readable once the process has exited.
            int st = 0;
            const pid_t pid = waitpid(self->shepherd, &st, WNOHANG);
            if (pid == 0 && !ec)
                return self->watch_exit();
            self->on_shepherd_gone(st, pid != 0); // or reaped elsewhere
        });
}

// Whatever the shepherd left (only a job that could kill it leaves
// anything) is now the node's to kill; the output pipes get a grace.
void JobProcess::Impl::on_shepherd_gone(int wait_status, bool reaped_here) {
    reaped = reaped_here;
    shepherd_status = wait_status;
    subreaper::forget_shepherd(shepherd);
    stop_timer.cancel();
    std::error_code ignored;
    exit_watch.close(ignored);
    subreaper::kill_strangers(io);

    if (out.is_open() || err.is_open()) {
        output_timer.expires_after(output_grace);
        output_timer.async_wait([self = shared_from_this()](
                                    std::error_code ec) {
            if (!ec)
                self->close_output();
        });
    }
    part_done();
}

// Reads what the pipes already hold, then closes them: their pending
// reads end, each with its part_done.
void JobProcess::Impl::close_output() {
    const std::pair<asio::posix::stream_descriptor*, JobStream> streams[] = {
        {&out, JobStream::out}, {&err, JobStream::err}};
    for (auto [stream, which] : streams) {
        if (!stream->is_open())
            continue;
        std::error_code ec;
        stream->non_blocking(true, ec);
        std::array<char, read_chunk_bytes>& buffer =
            which == JobStream::out ? out_buffer : err_buffer;
        for (std::size_t drained = 0; !ec && drained < max_drain_bytes;) {
            const std::size_t n = stream->read_some(asio::buffer(buffer), ec);
            if (n > 0 && !detached && handlers.on_output)
                handlers.on_output(which, {buffer.data(), n});
            drained += n;
        }
        stream->close(ec);
    }
}

void JobProcess::Impl::part_done() {
    if (--parts_left > 0)
        return;
    output_timer.cancel();
    JobEnd end = make_end();

    // Every process of the job is gone: its cgroup is empty.
    if (cgroup) {
        end.memory_exhausted = cgroup->memory_exhausted();
        auto why = cgroup->remove();
        if (!why.empty() && end.error.empty())
            end.error = why;
    }
    auto on_end = std::move(handlers.on_end);
    handlers = {}; // they may hold their owner alive
    if (on_end && !detached)
        on_end(std::move(end));
}

JobEnd JobProcess::Impl::make_end() const {
    JobEnd end;
    if (report_bytes < sizeof report && killed_shepherd) {
        end.ran = true;
        end.stopped = true;
        end.signal = SIGKILL;
        return end;
    }
    if (report_bytes < sizeof report) {
        end.error = "the job's shepherd ended without a report (" +
                    describe_wait_status(shepherd_status) + ")";
        return end;
    }
    if (report.stage != stage_ran) {
        end.error = describe_failure(report, program);
        end.stage = report.stage;
        return end;
    }
    end.ran = true;
    end.stopped = report.stopped != 0;
    if (WIFSIGNALED(report.wait_status))
        end.signal = WTERMSIG(report.wait_status);
    else
        end.exit_code = WEXITSTATUS(report.wait_status);
    return end;
}

void JobProcess::Impl::stop() {
    // Until reaped the shepherd's pid cannot be reused, so these kills
    // reach the right process.
    if (shepherd <= 0 || reaped || !exit_watch.is_open())
        return;
    kill(shepherd, stop_signal);
    kill(shepherd, SIGCONT); // a job may have stopped it
    stop_timer.expires_after(stop_grace);
    stop_timer.async_wait([self = shared_from_this()](std::error_code ec) {
        if (ec || self->reaped || !self->exit_watch.is_open())
            return;
        self->killed_shepherd = true;
        kill(self->shepherd, SIGKILL);
    });
}

JobProcess::JobProcess(asio::io_context& io, const JobSpec& spec,
                       const Containment& containment, Handlers handlers)
    : impl_(std::make_shared<Impl>(io, containment)) {
    impl_->handlers = std::move(handlers);
    impl_->start(spec);
}

JobProcess::~JobProcess() {
    // The pending reads and the exit watch keep impl_ alive until the
    // shepherd is reaped; they only stop calling back.
    impl_->detached = true;
    impl_->stop();
}

void JobProcess::stop() {
    impl_->stop();
}

} // namespace cloudnode::platform
