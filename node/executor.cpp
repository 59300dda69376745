#include "node/executor.hpp"

#include "node/config.hpp"
#include "node/platform/job_folder.hpp"
#include "node/platform/job_process.hpp"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <map>
#include <string_view>
#include <utility>

namespace cloudnode {
namespace {

namespace fs = std::filesystem;
using platform::JobProcess;
using platform::JobStream;

// Job ids come from peers: only these bytes reach a folder name.
constexpr std::size_t max_folder_id_bytes = 64;

std::string folder_safe(std::string_view job_id) {
    std::string safe;
    for (char c : job_id.substr(0, max_folder_id_bytes)) {
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_';
        safe += plain ? c : '_';
    }
    return safe;
}

void capture(CapturedOutput& output, std::string_view bytes,
             std::size_t max_bytes) {
    output.total += bytes.size();
    if (output.bytes.size() < max_bytes)
        output.bytes.append(bytes.substr(0, max_bytes - output.bytes.size()));
}

// One job from run() to done: its folder, its process tree, what it
// wrote so far and whether its timeout fired.
struct Job {
    Job(asio::io_context& io, ExecutionRequest request, Executor::Done done)
        : request(std::move(request)), done(std::move(done)), timer(io) {}

    void finish(ExecutionResult result);
    void report_end(platform::JobEnd end);

    std::map<std::uint64_t, std::shared_ptr<Job>>* table = nullptr;
    std::uint64_t serial = 0;
    ExecutionRequest request;
    Executor::Done done; // empty once the Executor is gone
    fs::path folder;

    cloudproto::Clock::time_point started;
    std::chrono::steady_clock::time_point began;
    asio::steady_timer timer;
    bool timed_out = false;

    std::unique_ptr<JobProcess> process;
    CapturedOutput out;
    CapturedOutput err;
};

// The caller holds a reference to the job, so leaving the table here
// does not destroy it.
void Job::finish(ExecutionResult result) {
    timer.cancel();
    result.started = started;
    result.finished = cloudproto::Clock::now();
    result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - began);

    // Every process is gone by now, so nothing writes here any more.
    if (!folder.empty()) {
        std::string why = platform::remove_job_folder(folder);
        if (!why.empty() && result.error.empty())
            result.error = std::move(why);
    }

    auto done_now = std::move(done);
    if (table != nullptr)
        table->erase(serial);
    if (done_now)
        done_now(std::move(result));
}

void Job::report_end(platform::JobEnd end) {
    ExecutionResult result;
    if (!end.ran) {
        result.kind = ExecutionResult::Kind::failed_to_start;
        result.error = std::move(end.error);
    } else if (end.stopped && timed_out) {
        result.outcome = cloudproto::Outcome::timeout;
    } else if (end.signal != 0) {
        result.outcome = cloudproto::Outcome::signalled;
        result.signal = end.signal;
    } else {
        result.outcome = cloudproto::Outcome::exited;
        result.exit_code = end.exit_code;
    }
    result.memory_exhausted = end.memory_exhausted;
    result.out = std::move(out);
    result.err = std::move(err);
    finish(std::move(result));
}

} // namespace

struct Executor::Impl {
    void start(const std::shared_ptr<Job>& job);
    void fail(const std::shared_ptr<Job>& job, std::string error);

    asio::io_context& io;
    fs::path work_root;
    const platform::Containment& containment;
    std::uint64_t next_serial = 1;
    std::map<std::uint64_t, std::shared_ptr<Job>> jobs;
};

void Executor::Impl::fail(const std::shared_ptr<Job>& job, std::string error) {
    // `done` must not run inside run(): the caller may hold locks or be
    // halfway through its own bookkeeping.
    asio::post(io, [job, error = std::move(error)]() mutable {
        ExecutionResult result;
        result.kind = ExecutionResult::Kind::failed_to_start;
        result.error = std::move(error);
        job->finish(std::move(result));
    });
}

void Executor::Impl::start(const std::shared_ptr<Job>& job) {
    const ExecutionRequest& request = job->request;
    std::string error;

    // Fresh folder with the script in it.
    const auto& name = request.script_name;
    if (name.empty() || name == "." || name == ".." ||
        name.find_first_of("/\\") != std::string::npos)
        return fail(job, "bad script name: " + name);
    job->folder = platform::make_job_folder(
        work_root, "job-" + folder_safe(request.job_id), error);
    if (job->folder.empty())
        return fail(job, std::move(error));
    const fs::path script = job->folder / name;
    if (!platform::write_job_script(script, request.script, error))
        return fail(job, std::move(error));

    // The command line and a clean environment.
    platform::JobSpec spec;
    spec.argv = Runtime::with_script(request.command, script.string());
    if (spec.argv.empty())
        return fail(job, "empty command");
    spec.argv.front() = platform::resolve_program(spec.argv.front());
    spec.env = platform::job_environment(job->folder, request.job_id);
    spec.working_folder = job->folder;
    spec.script = script;
    spec.limits = request.limits;
    spec.slot = request.slot;

    // The handlers hold the job alive until its tree is gone.
    JobProcess::Handlers handlers;
    handlers.on_output = [job = job.get()](JobStream which,
                                           std::string_view bytes) {
        auto& output = which == JobStream::out ? job->out : job->err;
        capture(output, bytes, job->request.max_output_bytes);
    };
    handlers.on_end = [job](platform::JobEnd end) {
        job->report_end(std::move(end));
    };
    job->process = std::make_unique<JobProcess>(io, spec, containment,
                                                std::move(handlers));

    // A zero timeout means none.
    if (request.timeout.count() > 0) {
        job->timer.expires_after(request.timeout);
        // Weak: the job may finish while this handler waits in line.
        job->timer.async_wait([weak = std::weak_ptr(job)](std::error_code ec) {
            const auto self = weak.lock();
            if (ec || !self)
                return; // finished first
            self->timed_out = true;
            self->process->stop();
        });
    }
}

Executor::Executor(asio::io_context& io, std::filesystem::path work_root,
                   const platform::Containment& containment)
    : impl_(std::make_unique<Impl>(
          Impl{io, std::move(work_root), containment, 1, {}})) {
    // Folders of jobs that were running when the node last stopped: those
    // jobs run again, in new folders.
    std::error_code ec;
    for (auto& entry : fs::directory_iterator(impl_->work_root, ec)) {
        auto name = entry.path().filename().string();
        if (name.starts_with("job-") || name.starts_with("probe-"))
            platform::remove_job_folder(entry.path());
    }
}

Executor::~Executor() {
    // Jobs still running are killed; they clean up after themselves
    // while `io` runs, but nobody is told.
    for (auto& [serial, job] : impl_->jobs) {
        job->table = nullptr;
        job->done = nullptr;
        if (job->process)
            job->process->stop();
    }
}

void Executor::run(ExecutionRequest request, Done done) {
    auto job =
        std::make_shared<Job>(impl_->io, std::move(request), std::move(done));
    job->started = cloudproto::Clock::now();
    job->began = std::chrono::steady_clock::now();
    job->table = &impl_->jobs;
    job->serial = impl_->next_serial++;
    impl_->jobs.emplace(job->serial, job);
    impl_->start(job);
}

void Executor::stop_all() {
    for (auto& [serial, job] : impl_->jobs) {
        if (job->process)
            job->process->stop();
    }
}

std::size_t Executor::running() const {
    return impl_->jobs.size();
}

} // namespace cloudnode
