#include "node/scheduler.hpp"

#include "node/result_mail.hpp"

#include "cloudproto/log.hpp"

#include <utility>

namespace cloudnode {

using cloudproto::JobState;
namespace log = cloudproto::log;

Scheduler::Scheduler(const Config& config, JobTable& jobs, Spool& spool,
                     Executor& executor)
    : config_(config), jobs_(jobs), spool_(spool), executor_(executor) {}

void Scheduler::enqueue(Job& job) {
    queue_.push_back(job.id());
    start_next();
}

void Scheduler::stop(std::function<void()> drained) {
    stopping_ = true;
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
        req.command = runtime->command;
        req.script_name = "job." + runtime->extension;
    }
    req.command.insert(req.command.end(), job.descriptor.args.begin(),
                       job.descriptor.args.end());
    req.script = job.script;
    req.timeout = job.descriptor.timeout.value_or(config_.default_timeout);
    req.max_output_bytes = config_.max_output_bytes;

    ++running_;
    job.report.started = cloudproto::Clock::now();
    jobs_.set_state(job, JobState::running);
    log::info(job.id(), "job", "started", "runtime={} timeout_s={}",
              job.descriptor.runtime,
              std::chrono::duration_cast<std::chrono::seconds>(req.timeout)
                  .count());

    if (!runtime) {
        // Only a configuration change across a restart gets here.
        ExecutionResult r;
        r.kind = ExecutionResult::Kind::failed_to_start;
        r.started = r.finished = cloudproto::Clock::now();
        r.error = "runtime " + job.descriptor.runtime +
                  " is no longer offered by this node";
        finish(job.id(), std::move(r));
        return;
    }
    executor_.run(std::move(req), [this, id = job.id()](ExecutionResult r) {
        finish(id, std::move(r));
    });
}

void Scheduler::finish(const std::string& id, ExecutionResult r) {
    --running_;
    if (stopping_) {
        if (running_ == 0 && drained_)
            std::exchange(drained_, nullptr)();
        return;
    }
    start_next();
    Job* job = jobs_.find(id);
    if (!job)
        return;

    // The report as it will be stored; the table shows it once durable.
    cloudproto::JobReport report = job->report;
    report.started = r.started;
    report.finished = r.finished;
    report.duration = r.duration;
    if (r.kind == ExecutionResult::Kind::failed_to_start) {
        report.state = JobState::failed;
        report.error = r.error;
    } else {
        report.state = JobState::done;
        report.outcome = r.outcome;
        if (r.outcome == cloudproto::Outcome::exited)
            report.exit_code = r.exit_code;
        if (r.outcome == cloudproto::Outcome::signalled)
            report.signal = r.signal;
    }
    report.stdout_bytes = r.out.total;
    report.stderr_bytes = r.err.total;
    report.stdout_truncated = r.out.truncated();
    report.stderr_truncated = r.err.truncated();

    ResultMailSettings mail_settings{config_.mail_from,
                                     config_.mail_inline_limit_bytes};
    auto mail = build_result_mail(
        {report, job->descriptor, r.out.bytes, r.err.bytes}, mail_settings,
        cloudproto::Clock::now());

    Job stored = *job;
    stored.report = report;
    log::info(id, "job", "finished",
              "state={} outcome={} exit={} signal={} duration_ms={} "
              "stdout_bytes={} stderr_bytes={}",
              to_string(report.state),
              report.outcome ? to_string(*report.outcome) : "none",
              report.exit_code.value_or(-1), report.signal.value_or(0),
              r.duration.count(), r.out.total, r.err.total);

    spool_.store_result(
        stored, std::move(r.out.bytes), std::move(r.err.bytes),
        std::move(mail), [this, id, report](const std::string& error) {
            Job* job = jobs_.find(id);
            if (!job)
                return;
            if (!error.empty()) {
                // Still in its batch: a restart runs it again.
                log::error(id, "job", "result-stored",
                           "result=tempfail error={}", log::value(error));
                return;
            }
            job->report = report;
            job->script.clear();
            job->script.shrink_to_fit();
            job->descriptor_text.clear();
            jobs_.set_state(*job, report.state);
            log::info(id, "mail", "delivered", "result=ok outbox={}",
                      log::value(spool_.mail_path(id).string()));
        });
}

} // namespace cloudnode
