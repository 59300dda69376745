#include "node/router.hpp"

#include "cloudproto/log.hpp"
#include "cloudproto/text.hpp"
#include "cloudproto/tls.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace cloudnode {

using cloudproto::JobState;
namespace log = cloudproto::log;

namespace {

// A job whose relay failed for a reason that may pass (a full disk, a
// peer busy storing the same job) is tried again after this long.
constexpr std::chrono::seconds retry_delay{1};

std::optional<std::uint64_t> announced(const cloudproto::Capabilities& caps,
                                       const std::string& keyword) {
    auto it = caps.keywords.find(keyword);
    if (it == caps.keywords.end())
        return std::nullopt;
    auto words = cloudproto::split_words(it->second);
    if (words.empty())
        return std::nullopt;
    return cloudproto::parse_decimal<std::uint64_t>(words[0]);
}

// Why a job can run nowhere, for its report and mail.
std::string nowhere_text(const Job& job) {
    std::string text =
        fmt::format("no provider offers runtime {}", job.descriptor.runtime);
    for (const auto& [peer, reply] : job.refused_by)
        text += fmt::format("; {} refused it: {}", peer, reply);
    return text;
}

} // namespace

Router::Router(asio::io_context& io, const Config& config, JobTable& jobs,
               Spool& spool, Scheduler& scheduler)
    : io_(io), config_(config), jobs_(jobs), spool_(spool),
      scheduler_(scheduler), retry_timer_(io) {
    const auto& fed = config.federation;
    if (fed.peers.empty())
        return;
    tls_.emplace(cloudproto::tls::make_peer_client_context(
        config.certificate, config.private_key, fed.authority));
    for (const auto& peer : fed.peers)
        links_.emplace_back(io, config, peer, *tls_);
}

void Router::start() {
    for (auto& l : links_) {
        l.start([this, &l] {
            if (l.up())
                give_back_owed();
            place_waiting();
        });
    }
}

void Router::stop() {
    stopped_ = true;
    retry_timer_.cancel();
    for (auto& l : links_)
        l.stop();
}

PeerLink* Router::link(const std::string& name) const {
    for (auto& l : links_) {
        if (cloudproto::same_node_name(l.name(), name))
            return const_cast<PeerLink*>(&l);
    }
    return nullptr;
}

// Whether `link`'s peer runs the job's runtime and would take the job:
// not crossed yet, not refused, within the limits it announced.
bool Router::fits(const Job& job, const PeerLink& link) const {
    const auto& rt = job.descriptor.runtime;
    if (!link.runs(rt) || job.route.crossed(link.name()))
        return false;
    for (const auto& [peer, reply] : job.refused_by) {
        if (peer == link.name())
            return false;
    }
    const auto& caps = *link.capabilities();
    auto bytes = job.descriptor_text.size() + job.script.size();
    if (caps.max_job_bytes && bytes > caps.max_job_bytes)
        return false;
    auto timeout = job.descriptor.timeout;
    auto max_timeout = announced(caps, "MAX-TIMEOUT-SECONDS");
    if (timeout && max_timeout &&
        static_cast<std::uint64_t>(timeout->count()) > *max_timeout)
        return false;
    auto hop_limit = announced(caps, "RELAY");
    return !hop_limit || job.route.hops + 1 <= *hop_limit;
}

Router::Offer Router::offer(const Job& job) const {
    if (config_.find_runtime(job.descriptor.runtime))
        return Offer::here;
    bool unheard = false;
    for (const auto& l : links_) {
        if (!l.capabilities())
            unheard = unheard || !job.route.crossed(l.name());
        else if (fits(job, l))
            return Offer::peers;
    }
    return unheard ? Offer::not_reachable : Offer::nobody;
}

std::vector<std::string> Router::runtimes_accepted() const {
    std::vector<std::string> names;
    auto add = [&names](const std::string& n) {
        if (std::find(names.begin(), names.end(), n) == names.end())
            names.push_back(n);
    };
    for (const auto& rt : config_.runtimes)
        add(rt.name);
    for (const auto& l : links_) {
        if (l.capabilities()) {
            for (const auto& n : l.capabilities()->runtimes)
                add(n);
        }
    }
    return names;
}

std::vector<cloudproto::RuntimeCapacity> Router::capacity() const {
    std::vector<cloudproto::RuntimeCapacity> lines;
    for (const auto& rt : config_.runtimes) {
        std::uint64_t queued = scheduler_.queued(rt.name);
        for (const auto& id : waiting_) {
            const Job* job = jobs_.find(id);
            queued += job && job->descriptor.runtime == rt.name;
        }
        lines.push_back({rt.name, scheduler_.free_slots(), queued});
    }
    return lines;
}

void Router::place(Job& job) {
    waiting_.push_back(job.id());
    place_waiting();
}

// Every waiting job, in the order they came, goes where it can; those
// that can go nowhere yet keep their place.
void Router::place_waiting() {
    if (placing_) {
        place_again_ = true;
        return;
    }
    placing_ = true;
    do {
        place_again_ = false;
        // Jobs in doubt go first to the peer that may hold them.
        std::stable_partition(waiting_.begin(), waiting_.end(),
                              [this](const std::string& id) {
                                  const Job* job = jobs_.find(id);
                                  return job && job->in_doubt;
                              });
        std::deque<std::string> still;
        while (!waiting_.empty() && !stopped_) {
            auto id = std::move(waiting_.front());
            waiting_.pop_front();
            Job* job = jobs_.find(id);
            if (!job || cloudproto::is_final(job->report.state))
                continue;
            auto choice = choose(*job);
            switch (choice.place) {
            case Place::here:
                scheduler_.enqueue(*job);
                break;
            case Place::peer:
                relay(*job, *choice.link);
                break;
            case Place::wait:
                still.push_back(std::move(id));
                break;
            case Place::nowhere:
                scheduler_.fail(*job, nowhere_text(*job));
                break;
            }
        }
        waiting_ = std::move(still);
    } while (place_again_ && !stopped_);
    placing_ = false;
}

Router::Choice Router::choose(Job& job) {
    const auto& runtime = job.descriptor.runtime;
    if (!job.relay_peer.empty() && !job.in_doubt)
        return {Place::wait}; // on its way out already

    // In doubt: only the peer that may hold it may be asked.
    if (job.in_doubt) {
        PeerLink* l = link(job.relay_peer);
        if (l)
            return {l->up() ? Place::peer : Place::wait, l};
        log::warn(job.id(), "job", "in-doubt-peer-gone", "peer={}",
                  job.relay_peer);
        job.in_doubt = false;
        job.relay_peer.clear();
    }

    bool runs_here = config_.find_runtime(runtime) != nullptr;
    if (runs_here && (scheduler_.free_slots() > 0 || job.relayed_in()))
        return {Place::here};

    // The peer with the most room, then the shortest queue, then by name.
    PeerLink* best = nullptr;
    cloudproto::RuntimeCapacity best_room;
    for (auto& l : links_) {
        if (!l.up() || l.busy() || !fits(job, l))
            continue;
        auto room = l.room(runtime);
        if (room.free_slots == 0)
            continue;
        bool better = !best || room.free_slots > best_room.free_slots ||
                      (room.free_slots == best_room.free_slots &&
                       room.queued_jobs < best_room.queued_jobs);
        if (better) {
            best = &l;
            best_room = room;
        }
    }
    if (best)
        return {Place::peer, best};
    if (runs_here)
        return {Place::wait};
    for (auto& l : links_) {
        // Its peer is busy or down for now, or has not been heard from
        // since start-up and may offer the runtime.
        bool unheard = !l.capabilities() && !job.route.crossed(l.name());
        if (unheard || (l.capabilities() && fits(job, l)))
            return {Place::wait};
    }
    return {Place::nowhere};
}

// Custody along a relay: the route is on disk before RELAY leaves, so
// that after a crash the node asks the same peer first.
void Router::relay(Job& job, PeerLink& to) {
    job.relay_peer = to.name();
    to.take_room(job.descriptor.runtime);
    spool_.store_route(job, [this, id = job.id()](const std::string& error) {
        Job* job = jobs_.find(id);
        if (!job)
            return;
        PeerLink* l = link(job->relay_peer);
        if (!error.empty() || !l) {
            log::error(id, "job", "relay-failed",
                       "peer={} result=tempfail error={}", job->relay_peer,
                       log::value(error.empty() ? "peer gone" : error));
            if (!job->in_doubt)
                job->relay_peer.clear();
            retry_later(id);
            return;
        }
        cloudproto::RelayRoute route = job->route;
        route.hops += 1;
        route.trace.push_back(config_.name);
        l->relay({id, job->descriptor_text, job->script, route,
                  [this, id](RelayOutcome o, const std::string& reply) {
                      relayed(id, o, reply);
                  }});
    });
}

void Router::relayed(const std::string& id, RelayOutcome outcome,
                     const std::string& reply) {
    Job* job = jobs_.find(id);
    if (!job || stopped_)
        return;
    std::string peer = job->relay_peer;
    PeerLink* l = link(peer);

    switch (outcome) {
    case RelayOutcome::accepted:
        job->in_doubt = false;
        job->report.relayed_to = peer;
        job->report.node = peer;
        job->report.trace = job->route.trace_text();
        if (!job->report.trace.empty())
            job->report.trace += ',';
        job->report.trace += config_.name;
        jobs_.set_state(*job, JobState::relayed);
        log::info(id, "job", "relayed", "peer={} hops={} reply={}", peer,
                  job->route.hops + 1, log::value(reply));
        break; // the link is free for the next job
    case RelayOutcome::in_doubt:
        job->in_doubt = true;
        log::warn(id, "job", "relay-failed",
                  "peer={} result=in-doubt "
                  "error={}",
                  peer, log::value(reply));
        waiting_.push_back(id);
        break;
    case RelayOutcome::not_taken:
        log::info(id, "job", "relay-failed",
                  "peer={} result=tempfail "
                  "reply={}",
                  peer, log::value(reply));
        if (l)
            l->forget_room(job->descriptor.runtime);
        if (job->in_doubt) {
            // It may still be there: ask that peer again, later.
            retry_later(id);
            return;
        }
        job->relay_peer.clear();
        waiting_.push_back(id);
        break;
    case RelayOutcome::refused:
        log::info(id, "job", "relay-failed",
                  "peer={} result=permfail "
                  "reply={}",
                  peer, log::value(reply));
        job->in_doubt = false;
        job->refused_by.emplace_back(peer, reply);
        job->relay_peer.clear();
        waiting_.push_back(id);
        break;
    }
    place_waiting();
}

// One timer for everything that is tried again later: jobs go back to
// waiting, and owed results are offered again.
void Router::retry_later(const std::string& id) {
    if (!id.empty())
        later_.push_back(id);
    if (retry_armed_ || stopped_)
        return;
    retry_armed_ = true;
    retry_timer_.expires_after(retry_delay);
    retry_timer_.async_wait([this](std::error_code ec) {
        retry_armed_ = false;
        if (ec || stopped_)
            return;
        for (auto& id : std::exchange(later_, {}))
            waiting_.push_back(std::move(id));
        give_back_owed();
        place_waiting();
    });
}

Router::ReturnCheck Router::check_return(const std::string& peer,
                                         const std::string& job_id) const {
    const Job* job = jobs_.find(job_id);
    if (!job)
        return ReturnCheck::not_relayed_there;
    if (returning_.count(job_id))
        return ReturnCheck::being_stored;
    if (cloudproto::is_final(job->report.state))
        return job->report.relayed_to == peer ? ReturnCheck::already_stored
                                              : ReturnCheck::not_relayed_there;
    return job->relay_peer == peer ? ReturnCheck::expected
                                   : ReturnCheck::not_relayed_there;
}

// A peer gave back the result of a job this node relayed to it: stored
// without a mail (the node that ran it mailed it), then passed on if
// this node had it from a peer itself.
void Router::store_returned(const std::string& peer,
                            cloudproto::JobReport report, std::string out,
                            std::string err, Spool::Done done) {
    Job* job = jobs_.find(report.job_id);
    if (!job) {
        done("the job is gone");
        return;
    }
    report.accepted = job->report.accepted;
    report.relayed_to = peer;
    report.mail.clear(); // the peer that ran it mails it
    report.mail_error.clear();
    Job stored;
    stored.report = report;
    stored.digest = job->digest;
    std::string return_to = job->relayed_in() ? job->route.trace.back() : "";

    // One result per job: a second RETURN meanwhile is told to wait.
    returning_.insert(report.job_id);
    spool_.store_result(stored, out, err, "", return_to,
                        [this, peer, report, return_to,
                         done = std::move(done)](const std::string& error) {
                            returning_.erase(report.job_id);
                            Job* job = jobs_.find(report.job_id);
                            if (!error.empty() || !job) {
                                done(error.empty() ? "the job is gone" : error);
                                return;
                            }
                            job->report = report;
                            job->in_doubt = false;
                            job->script.clear();
                            job->descriptor_text.clear();
                            jobs_.set_state(*job, report.state);
                            log::info(report.job_id, "job", "returned",
                                      "from={} node={} state={}", peer,
                                      report.node, to_string(report.state));
                            if (!return_to.empty())
                                give_back(report.job_id, return_to);
                            done({});
                        });
}

void Router::give_back(const Job& job) {
    if (job.relayed_in())
        give_back(job.id(), job.route.trace.back());
}

void Router::owe_returns(const std::map<std::string, std::string>& owed) {
    for (const auto& [id, peer] : owed)
        owed_[id] = peer;
}

void Router::give_back_owed() {
    for (const auto& [id, peer] : owed_) {
        PeerLink* l = link(peer);
        if (l && l->up() && !giving_back_.count(id))
            give_back(id, peer);
    }
}

// The stored result goes to `peer`, read back from the spool; it stays
// owed until the peer has it.
void Router::give_back(const std::string& id, const std::string& peer) {
    owed_[id] = peer;
    PeerLink* l = link(peer);
    if (!l) {
        log::error(id, "result", "return-failed",
                   "to={} result=permfail error=\"not a configured peer\"",
                   peer);
        owed_.erase(id);
        return;
    }
    if (!l->up() || giving_back_.count(id))
        return; // when the link comes up
    giving_back_[id] = true;
    spool_.load_output(id, [this, id, peer](const std::string& error,
                                            std::string out, std::string err) {
        const Job* job = jobs_.find(id);
        PeerLink* l = link(peer);
        if (!error.empty() || !job || !l) {
            giving_back_.erase(id);
            log::error(id, "result", "return-failed",
                       "to={} result=tempfail error={}", peer,
                       log::value(error));
            retry_later({});
            return;
        }
        l->give_back({id, job->report, std::move(out), std::move(err),
                      [this, id, peer](bool settled, const std::string& reply) {
                          giving_back_.erase(id);
                          if (!settled) {
                              log::info(id, "result", "return-failed",
                                        "to={} result=tempfail reply={}", peer,
                                        log::value(reply));
                              retry_later({});
                              return;
                          }
                          owed_.erase(id);
                          spool_.mark_returned(id);
                          bool ok = reply.starts_with("2");
                          log::info(id, "result", "returned",
                                    "to={} result={} reply={}", peer,
                                    ok ? "ok" : "permfail", log::value(reply));
                      }});
    });
}

} // namespace cloudnode
