// Decides when each accepted job runs: first come, first served, at most
// `slots` at once; and carries a finished job to its stored result and
// its mail.
#pragma once

#include "node/config.hpp"
#include "node/executor.hpp"
#include "node/job_table.hpp"
#include "node/spool.hpp"

#include <deque>
#include <functional>
#include <string>

namespace cloudnode {

class Scheduler {
public:
    Scheduler(const Config& config, JobTable& jobs, Spool& spool,
              Executor& executor);

    // `job` is durable: it runs as soon as a slot is free.
    void enqueue(Job& job);

    // Starts nothing more; jobs killed from now on are not finished but
    // left in the spool, to run again after a restart. `drained` runs
    // once no job is running any more.
    void stop(std::function<void()> drained);

    std::size_t queued() const { return queue_.size(); }
    std::size_t running() const { return running_; }

private:
    void start_next();
    void start(Job& job);
    void finish(const std::string& id, ExecutionResult result);

    const Config& config_;
    JobTable& jobs_;
    Spool& spool_;
    Executor& executor_;
    std::deque<std::string> queue_;
    std::size_t running_ = 0;
    bool stopping_ = false;
    std::function<void()> drained_;
};

} // namespace cloudnode
