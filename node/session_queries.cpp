// The verbs that read what the node knows of a job: STATUS, WAIT and
// RESULT (proto-spec sections 8.6 to 8.8).
#include "node/session.hpp"
#include "node/until_called.hpp"

#include "cloudproto/job_id.hpp"
#include "cloudproto/log.hpp"
#include "cloudproto/protocol.hpp"
#include "cloudproto/text.hpp"

#include <fmt/format.h>

namespace cloudnode {

using cloudproto::JobState;
namespace code = cloudproto::reply_code;
namespace log = cloudproto::log;

namespace {

std::vector<std::string> report_lines(const cloudproto::JobReport& report) {
    std::vector<std::string> lines;
    for (const auto& f : report.to_fields())
        lines.push_back(cloudproto::format_field(f));
    return lines;
}

} // namespace

// The job a query names; replies 501 or 550 and gives null when there is
// none. A job still being stored is not the node's yet: no such job.
Job* Session::check_job(const std::string& id) {
    if (!cloudproto::is_valid_job_id(id)) {
        reply(code::parameter_error, bad_job_id);
        return nullptr;
    }
    Job* job = ctx_.jobs.find(id);
    if (!job || !job->durable) {
        reply(code::no_such_job, "no such job " + id);
        return nullptr;
    }
    return job;
}

asio::awaitable<void> Session::proceed_status(const Command& cmd) {
    Job* job = check_job(cmd.args[0]);
    if (job)
        reply(code::ok, report_lines(job->report));
    co_return;
}

asio::awaitable<void> Session::proceed_wait(const Command& cmd) {
    const std::string& id = cmd.args[0];
    auto seconds = cloudproto::parse_count(cmd.args[1], 4);
    if (!seconds || *seconds < 1 ||
        *seconds >
            static_cast<std::uint64_t>(cloudproto::max_wait_timeout.count())) {
        reply(code::parameter_error,
              fmt::format("seconds must be from 1 to {}",
                          cloudproto::max_wait_timeout.count()));
        co_return;
    }
    Job* job = check_job(id);
    if (!job)
        co_return;

    auto line = [](JobState s) { return "STATE " + std::string(to_string(s)); };
    std::vector<std::string> lines;
    if (cloudproto::is_final(job->report.state)) {
        reply(code::ok, line(job->report.state));
        co_return;
    }

    // Sleep on a timer; each state change wakes it early.
    wake_.emplace(co_await asio::this_coro::executor);
    wake_->expires_after(std::chrono::seconds{*seconds});
    std::vector<JobState> changes{job->report.state};
    auto token = ctx_.jobs.watch(id, [this, &changes](const Job& j) {
        changes.push_back(j.report.state);
        wake_->cancel();
    });
    connection_->disarm();

    std::optional<JobState> last;
    bool finished = false;
    while (!finished && !stopped_) {
        for (auto s : changes) {
            if (cloudproto::is_final(s)) {
                reply(code::ok, line(s));
                finished = true;
                break;
            }
            if (s != last)
                connection_->queue(fmt::format("250-{}\r\n", line(s)));
            last = s;
        }
        changes.clear();
        if (finished)
            break;
        // A client that does not read its lines has the idle timeout to
        // take them, as any reply.
        connection_->arm(ctx_.config.idle_timeout);
        auto flushed = co_await connection_->flush();
        connection_->disarm();
        if (flushed)
            break;
        if (!changes.empty())
            continue; // changed while the lines were being sent
        std::error_code ec;
        co_await wake_->async_wait(
            asio::redirect_error(asio::use_awaitable, ec));
        if (!ec && changes.empty()) {
            // Time is up and the job is not final: the client asks again.
            reply(code::ok, line(last.value_or(JobState::queued)));
            finished = true;
        }
    }
    if (stopped_ && !finished)
        reply(code::ok, line(last.value_or(JobState::queued)));
    ctx_.jobs.unwatch(token);
    wake_.reset();
}

asio::awaitable<void> Session::proceed_result(const Command& cmd) {
    const std::string& id = cmd.args[0];
    Job* job = check_job(id);
    if (!job)
        co_return;
    if (!cloudproto::is_final(job->report.state)) {
        reply(code::job_not_finished,
              fmt::format("job {} is {}", id, to_string(job->report.state)));
        co_return;
    }

    // The captured output is read from the spool off the event loop.
    auto report = job->report;
    std::string error, out, err;
    co_await until_called([&](auto called) {
        ctx_.spool.load_output(id, [&, called](const std::string& e,
                                               std::string o, std::string r) {
            error = e;
            out = std::move(o);
            err = std::move(r);
            called();
        });
    });
    if (!error.empty()) {
        log::error(id, "job", "result-read", "error={}", log::value(error));
        reply(code::local_error, "the result cannot be read; try again");
        co_return;
    }

    // The output leaves from where it lies, never copied into the queue,
    // and before the next command is read: a session holds one result.
    // TODO(#5): read it from the spool in slices; until then a client
    // that does not read holds up to twice MAX-OUTPUT-BYTES of the
    // node's memory until the idle timeout ends its session.
    auto lines = report_lines(report);
    lines.push_back(fmt::format("PAYLOAD {} {}", out.size(), err.size()));
    reply(code::ok, lines);
    connection_->arm(ctx_.config.idle_timeout);
    // A failure ends the session at its next read (send_failed).
    auto sent = co_await connection_->send(out);
    if (!sent)
        co_await connection_->send(err);
}

} // namespace cloudnode
