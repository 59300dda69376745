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
    Scheduler(asio::io_context& io, const Config& config, JobTable& jobs,
              Spool& spool, Executor& executor);

    // `job` is durable: it runs as soon as a slot is free.
    void enqueue(Job& job);

    // Starts nothing more; jobs killed from now on are not finished but
    // left in the spool, to run again after a restart. `drained` runs
    // once no job is running any more.
    void stop(std::function<void()> drained);

    std::size_t queued() const { return queue_.size(); }
    std::size_t running() const { return running_; }

private:
    // A job that ran, with what the node owes for it until stored.
    struct FinishedJob {
        Job job; // its report final
        std::string out;
        std::string err;
        std::string mail;
        std::chrono::seconds retry_delay = first_retry_delay;
    };
    static constexpr std::chrono::seconds first_retry_delay{1};
    static constexpr std::chrono::seconds max_retry_delay{60};

    void start_next();
    void start(Job& job);
    void finish(const std::string& id, ExecutionResult result);
    void store(std::shared_ptr<FinishedJob> result);
    void retry(std::shared_ptr<FinishedJob> result);

    asio::io_context& io_;
    const Config& config_;
    JobTable& jobs_;
    Spool& spool_;
    Executor& executor_;
    std::deque<std::string> queue_;
    std::size_t running_ = 0;
    std::vector<std::shared_ptr<asio::steady_timer>> retries_;
    bool stopping_ = false;
    std::function<void()> drained_;
};

} // namespace cloudnode
