#include "node/scheduler.hpp"

#include "node/result_mail.hpp"

#include "cloudproto/log.hpp"

#include <algorithm>
#include <utility>

namespace cloudnode {

using cloudproto::JobState;
namespace log = cloudproto::log;

namespace {

// What the job asked for, within what this node allows.
platform::JobLimits job_limits(const cloudproto::JobResources& asked,
                               const platform::JobLimits& most) {
    auto within = [](const std::optional<std::uint64_t>& wanted,
                     std::uint64_t max) {
        return wanted ? std::min(*wanted, max) : max;
    };
    return {within(asked.memory_bytes, most.memory_bytes),
            within(asked.cpu_seconds, most.cpu_seconds),
            within(asked.processes, most.processes),
            within(asked.disk_bytes, most.disk_bytes),
            within(asked.open_files, most.open_files)};
}

} // namespace

Scheduler::Scheduler(asio::io_context& io, const Config& config, JobTable& jobs,
                     Spool& spool, Executor& executor, std::string containment)
    : io_(io), config_(config), jobs_(jobs), spool_(spool), executor_(executor),
      containment_(std::move(containment)), slot_busy_(config.slots, false) {}

void Scheduler::enqueue(Job& job) {
    queue_.push_back(job.id());
    start_next();
}

std::size_t Scheduler::queued(std::string_view runtime) const {
    std::size_t n = 0;
    for (const auto& id : queue_) {
        const Job* job = jobs_.find(id);
        if (job && job->descriptor.runtime == runtime)
            ++n;
    }
    return n;
}

void Scheduler::fail(Job& job, std::string error) {
    ExecutionResult r;
    r.kind = ExecutionResult::Kind::failed_to_start;
    r.started = r.finished = cloudproto::Clock::now();
    r.error = std::move(error);
    log::info(job.id(), "job", "unrunnable", "error={}", log::value(r.error));
    complete(job, std::move(r));
}

void Scheduler::stop(std::function<void()> drained) {
    stopping_ = true;
    for (auto& timer : retries_)
        timer->cancel();
    drained_ = std::move(drained);
    if (running_ == 0 && drained_)
        std::exchange(drained_, nullptr)();
}

void Scheduler::start_next() {
    while (!stopping_ && running_ < config_.slots && !queue_.empty()) {
        auto id = std::move(queue_.front());
        queue_.pop_front();
        if (Job* job = jobs_.find(id))
            start(*job);
    }
}

void Scheduler::start(Job& job) {
    const Runtime* runtime = config_.find_runtime(job.descriptor.runtime);
    ExecutionRequest req;
    req.job_id = job.id();
    if (runtime) {
        req.command = runtime->command_with(job.descriptor.args);
        req.script_name = "job." + runtime->extension;
    }
    req.script = job.script;
    req.timeout = job.descriptor.timeout.value_or(config_.default_timeout);
    req.max_output_bytes = config_.max_output_bytes;
    req.limits = job_limits(job.descriptor.resources, config_.max_job);
    req.slot = take_slot();

    ++running_;
    job.report.started = cloudproto::Clock::now();
    job.report.containment = containment_;
    jobs_.set_state(job, JobState::running);
    log::info(
        job.id(), "job", "started",
        "runtime={} slot={} timeout_s={} memory_bytes={} processes={}",
        job.descriptor.runtime, req.slot,
        std::chrono::duration_cast<std::chrono::seconds>(req.timeout).count(),
        req.limits.memory_bytes, req.limits.processes);

    if (!runtime) {
        // Only a configuration change across a restart gets here.
        ExecutionResult r;
        r.kind = ExecutionResult::Kind::failed_to_start;
        r.started = r.finished = cloudproto::Clock::now();
        r.error = "runtime " + job.descriptor.runtime +
                  " is no longer offered by this node";
        slot_busy_[req.slot] = false;
        finish(job.id(), std::move(r));
        return;
    }
    const std::size_t slot = req.slot;
    executor_.run(std::move(req),
                  [this, id = job.id(), slot](ExecutionResult r) {
                      slot_busy_[slot] = false;
                      finish(id, std::move(r));
                  });
}

// The lowest free slot; start_next never runs more jobs than slots.
std::size_t Scheduler::take_slot() {
    auto free = std::find(slot_busy_.begin(), slot_busy_.end(), false);
    std::size_t slot = static_cast<std::size_t>(free - slot_busy_.begin());
    slot_busy_[slot] = true;
    return slot;
}

void Scheduler::finish(const std::string& id, ExecutionResult r) {
    --running_;
    if (stopping_) {
        if (running_ == 0 && drained_)
            std::exchange(drained_, nullptr)();
        return;
    }
    start_next();
    if (Job* job = jobs_.find(id))
        complete(*job, std::move(r));
    if (on_slot_free && free_slots() > 0)
        on_slot_free();
}

// The job's report becomes final, and the result and mail are stored.
void Scheduler::complete(Job& job_ref, ExecutionResult r) {
    Job* job = &job_ref;
    const std::string& id = job->id();
    cloudproto::JobReport report = job->report;
    report.started = r.started;
    report.finished = r.finished;
    if (r.kind == ExecutionResult::Kind::failed_to_start) {
        report.state = JobState::failed;
        report.error = r.error;
    } else {
        report.state = JobState::done;
        report.duration = r.duration;
        report.outcome = r.outcome;
        if (r.outcome == cloudproto::Outcome::exited)
            report.exit_code = r.exit_code;
        if (r.outcome == cloudproto::Outcome::signalled)
            report.signal = r.signal;
    }
    if (config_.mail_server)
        report.mail = "queued";
    if (r.memory_exhausted)
        report.limit_hit = "memory";
    report.stdout_bytes = r.out.total;
    report.stderr_bytes = r.err.total;
    report.stdout_truncated = r.out.truncated();
    report.stderr_truncated = r.err.truncated();

    ResultMailSettings mail_settings{config_.mail_from,
                                     config_.mail_inline_limit_bytes};
    auto mail =
        build_result_mail({report, job->descriptor, r.out.bytes, r.err.bytes},
                          mail_settings, cloudproto::Clock::now());

    log::info(id, "job", "finished",
              "state={} outcome={} exit={} signal={} duration_ms={} "
              "stdout_bytes={} stderr_bytes={}",
              to_string(report.state),
              report.outcome ? to_string(*report.outcome) : "none",
              report.exit_code.value_or(-1), report.signal.value_or(0),
              r.duration.count(), r.out.total, r.err.total);

    auto result = std::make_shared<FinishedJob>();
    result->job.report = report; // with the digest, all a result holds
    result->job.digest = job->digest;
    result->out = std::move(r.out.bytes);
    result->err = std::move(r.err.bytes);
    result->mail = std::move(mail);
    if (job->relayed_in())
        result->return_to = job->route.trace.back();
    store(std::move(result));
}

// Stores the result and its mail (and, for a job relayed in, that its
// result is owed to the peer it came from); until that succeeds the node still
// owes them, so a failure (a full disk, say) is retried with growing
// delays, and the job shows as running meanwhile.
void Scheduler::store(std::shared_ptr<FinishedJob> result) {
    const Job& stored = result->job;
    spool_.store_result(
        stored, result->out, result->err, result->mail, result->return_to,
        [this, result](const std::string& error) {
            const std::string& id = result->job.id();
            Job* job = jobs_.find(id);
            if (!job)
                return;
            if (!error.empty()) {
                log::error(id, "job", "result-stored",
                           "result=tempfail error={} retry_s={}",
                           log::value(error), result->retry_delay.count());
                retry(result);
                return;
            }
            job->report = result->job.report;
            job->script.clear();
            job->script.shrink_to_fit();
            job->descriptor_text.clear();
            jobs_.set_state(*job, job->report.state);
            if (config_.mail_server)
                log::info(id, "mail", "queued", "file={}",
                          log::value(spool_.mail_path(id).string()));
            else
                log::info(id, "mail", "delivered", "result=ok outbox={}",
                          log::value(spool_.mail_path(id).string()));
            if (on_result_stored)
                on_result_stored(*job);
        });
}

void Scheduler::retry(std::shared_ptr<FinishedJob> result) {
    auto timer = std::make_shared<asio::steady_timer>(io_);
    timer->expires_after(result->retry_delay);
    result->retry_delay = std::min(2 * result->retry_delay, max_retry_delay);
    retries_.push_back(timer);
    timer->async_wait([this, result, timer](std::error_code ec) {
        std::erase(retries_, timer);
        if (!ec && !stopping_)
            store(result);
    });
}

} // namespace cloudnode
