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

// A RELAY or RETURN that failed for a reason that may pass (a full disk,
// a peer busy storing the same job, a lost connection) is sent again to
// that peer after these waits, doubled after each failure there.
constexpr std::chrono::seconds first_retry_delay{1};
constexpr std::chrono::seconds max_retry_delay{60};

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
    return within_hop_limit(job, link);
}

// Whether one more hop, to `link`'s peer, stays within its hop limit.
bool Router::within_hop_limit(const Job& job, const PeerLink& link) const {
    auto hop_limit = announced(*link.capabilities(), "RELAY");
    return !hop_limit || job.route.hops + 1 <= *hop_limit;
}

// For a refusal, the reason that names what stands in the way: the hop
// limit, or a trace that holds every runner, before "nobody".
Router::Offered Router::offer(const Job& job) const {
    const auto& runtime = job.descriptor.runtime;
    if (config_.find_runtime(runtime))
        return {Offer::here};
    bool unheard = false;
    Offered blocked{Offer::nobody};
    for (const auto& l : links_) {
        if (!l.capabilities()) {
            unheard = unheard || !job.route.crossed(l.name());
            continue;
        }
        if (fits(job, l))
            return {Offer::peers};
        if (!l.runs(runtime))
            continue;
        if (job.route.crossed(l.name())) {
            blocked.in_trace.push_back(l.name());
        } else if (!within_hop_limit(job, l)) {
            auto limit = announced(*l.capabilities(), "RELAY").value_or(0);
            blocked.hop_limit = std::max(blocked.hop_limit, limit);
        }
    }
    if (unheard)
        return {Offer::not_reachable};
    if (blocked.hop_limit > 0)
        blocked.offer = Offer::hop_limit;
    else if (!blocked.in_trace.empty())
        blocked.offer = Offer::loop;
    return blocked;
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
            if (!job || cloudproto::is_final(job->report.state)) {
                wait_logged_.erase(id);
                continue;
            }
            auto choice = choose(*job);
            if (choice.place != Place::wait)
                wait_logged_.erase(id);
            switch (choice.place) {
            case Place::here:
                forget_back_offs(id);
                scheduler_.enqueue(*job);
                break;
            case Place::peer:
                relay(*job, *choice.link);
                break;
            case Place::wait:
                if (*choice.why && wait_logged_[id] != choice.why) {
                    wait_logged_[id] = choice.why;
                    log::info(id, "job", "waiting", "reason={}", choice.why);
                }
                still.push_back(std::move(id));
                break;
            case Place::nowhere:
                forget_back_offs(id);
                scheduler_.fail(*job, nowhere_text(*job));
                break;
            }
        }
        waiting_ = std::move(still);
    } while (place_again_ && !stopped_);
    placing_ = false;
}

// Where `job` goes now. A wait says why: no free slot here or at a peer
// that could take it (no-room), its peers down or not heard from
// (peer-down), a doubt that only its peer can end (in-doubt), or peers
// with room that failed it a moment ago (back-off); nothing while a
// link with room carries another RELAY (it is free in a moment).
Router::Choice Router::choose(Job& job) {
    const auto& runtime = job.descriptor.runtime;
    if (!job.relay_peer.empty() && !job.in_doubt)
        return {Place::wait}; // on its way out already

    // In doubt: only the peer that may hold it may be asked.
    if (job.in_doubt) {
        PeerLink* l = link(job.relay_peer);
        if (l) {
            if (l->up() && !backing_off(relay_back_offs_,
                                        {job.id(), job.relay_peer}))
                return {Place::peer, l};
            return {Place::wait, nullptr, "in-doubt"};
        }
        log::warn(job.id(), "job", "in-doubt-peer-gone", "peer={}",
                  job.relay_peer);
        job.in_doubt = false;
        job.relay_peer.clear();
    }

    bool runs_here = config_.find_runtime(runtime) != nullptr;
    if (runs_here && (scheduler_.free_slots() > 0 || job.relayed_in()))
        return {Place::here};

    // The peer with the most room, then the shortest queue, then by name;
    // not one that failed this job a moment ago.
    PeerLink* best = nullptr;
    cloudproto::RuntimeCapacity best_room;
    bool backed_off = false;
    bool busy = false;
    for (auto& l : links_) {
        if (!l.up() || !fits(job, l))
            continue;
        auto room = l.room(runtime);
        if (room.free_slots == 0)
            continue;
        if (l.busy()) {
            busy = true; // free again in a moment: not worth a log line
            continue;
        }
        if (backing_off(relay_back_offs_, {job.id(), l.name()})) {
            backed_off = true;
            continue;
        }
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
    const char* why = busy ? "" : backed_off ? "back-off" : "no-room";
    if (runs_here)
        return {Place::wait, nullptr, why};
    bool some_up = false;
    bool some_could = false;
    for (auto& l : links_) {
        // Its peer is busy or down for now, or has not been heard from
        // since start-up and may offer the runtime.
        bool unheard = !l.capabilities() && !job.route.crossed(l.name());
        bool could = l.capabilities() && fits(job, l);
        some_could = some_could || unheard || could;
        some_up = some_up || (could && l.up());
    }
    if (!some_could)
        return {Place::nowhere};
    return {Place::wait, nullptr, some_up ? why : "peer-down"};
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
            auto retry = back_off(relay_back_offs_, {id, job->relay_peer});
            log::error(id, "job", "relay-failed",
                       "peer={} result=tempfail error={} retry_s={}",
                       job->relay_peer,
                       log::value(error.empty() ? "peer gone" : error),
                       retry.count());
            if (!job->in_doubt)
                job->relay_peer.clear();
            waiting_.push_back(id);
            place_waiting();
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
        forget_back_offs(id);
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
    case RelayOutcome::in_doubt: {
        job->in_doubt = true;
        auto retry = back_off(relay_back_offs_, {id, peer});
        log::warn(id, "job", "relay-failed",
                  "peer={} result=in-doubt error={} retry_s={}", peer,
                  log::value(reply), retry.count());
        waiting_.push_back(id);
        break;
    }
    case RelayOutcome::not_taken:
    case RelayOutcome::not_sent: {
        // Only a peer that saw the job, and failed it, is given a rest.
        auto retry = std::chrono::seconds{0};
        if (outcome == RelayOutcome::not_taken)
            retry = back_off(relay_back_offs_, {id, peer});
        log::info(id, "job", "relay-failed",
                  "peer={} result=tempfail reply={} retry_s={}", peer,
                  log::value(reply), retry.count());
        if (l)
            l->forget_room(job->descriptor.runtime);
        // In doubt, it may still be there: only that peer, later.
        if (!job->in_doubt)
            job->relay_peer.clear();
        waiting_.push_back(id);
        break;
    }
    case RelayOutcome::refused:
        forget_back_offs(id);
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

// The next wait before `key` is tried again: 1 s, doubled after each
// failure, at most 60 s. The timer wakes the router then.
std::chrono::seconds Router::back_off(BackOffs& offs, const JobPeer& key) {
    auto& b = offs[key];
    auto delay = first_retry_delay;
    for (unsigned i = 0; i < b.failures && delay < max_retry_delay; ++i)
        delay *= 2;
    delay = std::min(delay, max_retry_delay);
    ++b.failures;
    b.not_before = Clock::now() + delay;
    wake_at(b.not_before);
    return delay;
}

bool Router::backing_off(const BackOffs& offs, const JobPeer& key) const {
    auto it = offs.find(key);
    return it != offs.end() && Clock::now() < it->second.not_before;
}

void Router::forget_back_offs(const std::string& id) {
    auto it = relay_back_offs_.lower_bound({id, ""});
    while (it != relay_back_offs_.end() && it->first.first == id)
        it = relay_back_offs_.erase(it);
}

// One timer for every back-off: it rings at the earliest one due.
void Router::wake_at(Clock::time_point when) {
    if (stopped_ || (retry_armed_ && retry_due_ <= when))
        return;
    retry_armed_ = true;
    retry_due_ = when;
    retry_timer_.expires_at(when); // cancels a later wait
    retry_timer_.async_wait([this](std::error_code ec) {
        if (ec == asio::error::operation_aborted)
            return; // armed again earlier, or stopped
        retry_armed_ = false;
        if (!stopped_)
            woken();
    });
}

// Back-offs that ended: their jobs are placed and their results offered
// again; the timer is set for the next one.
void Router::woken() {
    give_back_owed();
    place_waiting();
    auto now = Clock::now();
    for (const auto* offs : {&relay_back_offs_, &return_back_offs_}) {
        for (const auto& [key, b] : *offs) {
            if (b.not_before > now)
                wake_at(b.not_before);
        }
    }
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
// without a mail (the node that ran it mailed it), then passed on to
// every peer that relayed the job to this node.
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
                        [this, peer, report,
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
                            forget_back_offs(report.job_id);
                            jobs_.set_state(*job, report.state);
                            log::info(report.job_id, "job", "returned",
                                      "from={} node={} state={}", peer,
                                      report.node, to_string(report.state));
                            give_back(*job);
                            done({});
                        });
}

// The peers owed the result of `job`: the one it was relayed in from,
// and any that relayed it again.
std::vector<std::string> Router::owed_for(const Job& job) const {
    std::vector<std::string> peers;
    if (job.relayed_in())
        peers.push_back(job.route.trace.back());
    for (const auto& p : job.owed_to) {
        bool known = std::any_of(peers.begin(), peers.end(), [&](auto& q) {
            return cloudproto::same_node_name(p, q);
        });
        if (!known)
            peers.push_back(p);
    }
    return peers;
}

void Router::give_back(const Job& job) {
    for (const auto& peer : owed_for(job))
        give_back(job.id(), peer);
}

void Router::owe_returns(
    const std::map<std::string, std::vector<std::string>>& owed) {
    for (const auto& [id, peers] : owed) {
        for (const auto& peer : peers)
            owed_.insert({id, peer});
    }
}

// Recorded on disk before the peer hears "already accepted"; a result
// stored already goes at once.
void Router::owe_also(const std::string& job_id, const std::string& peer,
                      Spool::Done done) {
    Job* job = jobs_.find(job_id);
    if (!job) {
        done("the job is gone");
        return;
    }
    auto owed = owed_for(*job);
    bool known = std::any_of(owed.begin(), owed.end(), [&](auto& p) {
        return cloudproto::same_node_name(p, peer);
    });
    if (known) {
        done({});
        return;
    }
    job->owed_to.push_back(peer);
    spool_.store_debts(*job, [this, job_id, peer, done = std::move(done)](
                                 const std::string& error) {
        Job* job = jobs_.find(job_id);
        if (!job) {
            done("the job is gone");
            return;
        }
        if (!error.empty()) {
            std::erase(job->owed_to, peer);
            done(error);
            return;
        }
        log::info(job_id, "result", "owed", "to={}", peer);
        if (cloudproto::is_final(job->report.state))
            give_back(job_id, peer);
        done({});
    });
}

void Router::give_back_owed() {
    for (const auto& key : owed_) {
        PeerLink* l = link(key.second);
        if (l && l->up() && !giving_back_.count(key) &&
            !backing_off(return_back_offs_, key))
            give_back(key.first, key.second);
    }
}

// The stored result goes to `peer`, read back from the spool; it stays
// owed until the peer has it.
void Router::give_back(const std::string& id, const std::string& peer) {
    JobPeer key{id, peer};
    owed_.insert(key);
    PeerLink* l = link(peer);
    if (!l) {
        log::error(id, "result", "return-failed",
                   "to={} result=permfail error=\"not a configured peer\"",
                   peer);
        owed_.erase(key);
        return;
    }
    if (!l->up() || giving_back_.count(key) ||
        backing_off(return_back_offs_, key))
        return; // when the link comes up, or the back-off ends
    giving_back_.insert(key);
    spool_.load_output(id, [this, key](const std::string& error,
                                       std::string out, std::string err) {
        const auto& [id, peer] = key;
        const Job* job = jobs_.find(id);
        PeerLink* l = link(peer);
        if (!error.empty() || !job || !l) {
            giving_back_.erase(key);
            auto retry = back_off(return_back_offs_, key);
            log::error(id, "result", "return-failed",
                       "to={} result=tempfail error={} retry_s={}", peer,
                       log::value(error), retry.count());
            return;
        }
        l->give_back(
            {id, job->report, std::move(out), std::move(err),
             [this, key](ReturnOutcome outcome, const std::string& reply) {
                 const auto& [id, peer] = key;
                 giving_back_.erase(key);
                 if (outcome != ReturnOutcome::settled) {
                     auto retry = std::chrono::seconds{0};
                     if (outcome == ReturnOutcome::not_taken)
                         retry = back_off(return_back_offs_, key);
                     log::info(id, "result", "return-failed",
                               "to={} result=tempfail reply={} retry_s={}",
                               peer, log::value(reply), retry.count());
                     return;
                 }
                 owed_.erase(key);
                 return_back_offs_.erase(key);
                 spool_.mark_returned(id, peer);
                 bool ok = reply.starts_with("2");
                 log::info(id, "result", "returned",
                           "to={} result={} reply={}", peer,
                           ok ? "ok" : "permfail", log::value(reply));
             }});
    });
}

} // namespace cloudnode
