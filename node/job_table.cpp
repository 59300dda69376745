#include "node/job_table.hpp"

#include <vector>

namespace cloudnode {

Job* JobTable::find(std::string_view id) {
    auto it = jobs_.find(std::string(id));
    return it == jobs_.end() ? nullptr : &it->second;
}

Job& JobTable::insert(Job job) {
    std::string id = job.id();
    return jobs_.insert_or_assign(std::move(id), std::move(job)).first->second;
}

void JobTable::erase(const std::string& id) { jobs_.erase(id); }

void JobTable::set_state(Job& job, cloudproto::JobState state) {
    job.report.state = state;

    // A watcher may unwatch (or watch) while being told: call a copy.
    std::vector<Watcher> told;
    for (auto& [token, entry] : watchers_) {
        if (entry.first == job.id())
            told.push_back(entry.second);
    }
    for (auto& w : told)
        w(job);
}

std::uint64_t JobTable::watch(const std::string& id, Watcher watcher) {
    auto token = next_token_++;
    watchers_.emplace(token, std::make_pair(id, std::move(watcher)));
    return token;
}

void JobTable::unwatch(std::uint64_t token) { watchers_.erase(token); }

} // namespace cloudnode
