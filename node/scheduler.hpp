// Decides when each accepted job runs: first come, first served, at most
// `slots` at once; and carries a finished job to its stored result and
// its mail.
#pragma once

#include "node/config.hpp"
#include "node/executor.hpp"
#include "node/job_table.hpp"
#include "node/spool.hpp"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cloudnode {

class Scheduler {
public:
    // `containment` is how this node's jobs run, for their reports.
    Scheduler(asio::io_context& io, const Config& config, JobTable& jobs,
              Spool& spool, Executor& executor, std::string containment);

    // `job` is durable: it runs as soon as a slot is free.
    void enqueue(Job& job);

    // Ends a job that cannot run anywhere as `failed`, with its result
    // and mail stored as for a job that ran.
    void fail(Job& job, std::string error);

    // Called when a slot frees (the router may have work for it), and
    // when a job's result is stored.
    std::function<void()> on_slot_free;
    std::function<void(Job&)> on_result_stored;

    // Starts nothing more; jobs killed from now on are not finished but
    // left in the spool, to run again after a restart. `drained` runs
    // once no job is running any more.
    void stop(std::function<void()> drained);

    std::size_t queued() const { return queue_.size(); }
    std::size_t queued(std::string_view runtime) const;
    std::size_t running() const { return running_; }
    std::size_t free_slots() const {
        return running_ < config_.slots ? config_.slots - running_ : 0;
    }

private:
    // A job that ran, with what the node owes for it until stored.
    struct FinishedJob {
        Job job; // its report final
        std::string out;
        std::string err;
        std::string mail;
        std::string return_to; // the peer owed it, for a job relayed in
        std::chrono::seconds retry_delay = first_retry_delay;
    };
    static constexpr std::chrono::seconds first_retry_delay{1};
    static constexpr std::chrono::seconds max_retry_delay{60};

    void start_next();
    void start(Job& job);
    std::size_t take_slot();
    void finish(const std::string& id, ExecutionResult result);
    void complete(Job& job, ExecutionResult result);
    void store(std::shared_ptr<FinishedJob> result);
    void retry(std::shared_ptr<FinishedJob> result);

    asio::io_context& io_;
    const Config& config_;
    JobTable& jobs_;
    Spool& spool_;
    Executor& executor_;
    std::string containment_;
    std::deque<std::string> queue_;
    std::size_t running_ = 0;
    std::vector<bool> slot_busy_; // a slot's uid serves one job at once
    std::vector<std::shared_ptr<asio::steady_timer>> retries_;
    bool stopping_ = false;
    std::function<void()> drained_;
};

} // namespace cloudnode
