// Every job the node knows, by id, and who waits for their state to
// change (WAIT). Lives on the event loop's thread only.
#pragma once

#include "node/job.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>

namespace cloudnode {

class JobTable {
public:
    using Watcher = std::function<void(const Job&)>;

    Job* find(std::string_view id);
    Job& insert(Job job);
    void erase(const std::string& id);

    // Changes the state and tells the job's watchers.
    void set_state(Job& job, cloudproto::JobState state);

    // `watcher` runs after each state change of job `id`, until unwatch.
    std::uint64_t watch(const std::string& id, Watcher watcher);
    void unwatch(std::uint64_t token);

    std::size_t size() const { return jobs_.size(); }

    template <typename F> void for_each(F f) {
        for (auto& [id, job] : jobs_)
            f(job);
    }

private:
    std::unordered_map<std::string, Job> jobs_;
    std::map<std::uint64_t, std::pair<std::string, Watcher>> watchers_;
    std::uint64_t next_token_ = 1;
};

} // namespace cloudnode
