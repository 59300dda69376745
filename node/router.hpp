// Where each job runs (proto-spec "Routing"): here when this node runs
// its runtime and has a free slot, otherwise at the peer with the most
// room, otherwise as soon as a slot frees anywhere. It also keeps the
// custody rules of a relay, and carries results back to the node a job
// came from.
#pragma once

#include "node/config.hpp"
#include "node/job_table.hpp"
#include "node/peer_link.hpp"
#include "node/scheduler.hpp"
#include "node/spool.hpp"

#include "cloudproto/federation.hpp"

#include <asio/io_context.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cloudnode {

class Router {
public:
    Router(asio::io_context& io, const Config& config, JobTable& jobs,
           Spool& spool, Scheduler& scheduler);

    // Connects to the peers. Call once, after recovery.
    void start();
    void stop();

    // `job` is durable (accepted, relayed in, or recovered): it goes
    // where it can run.
    void place(Job& job);

    // Whether `job` (its descriptor read, its route set) can be taken.
    enum class Offer {
        here,          // this node runs it
        peers,         // a peer outside the route runs it
        not_reachable, // no peer seen yet runs it, but some never answered
        hop_limit,     // its runners are one hop past their hop limit
        loop,          // its only runners are in its trace
        nobody,        // no provider offers it
    };
    struct Offered {
        Offer offer;
        std::uint64_t hop_limit = 0;  // hop_limit: the largest runner's
        std::vector<std::string> in_trace{}; // loop: the runners there
    };
    Offered offer(const Job& job) const;

    // Runtimes for a customer's HELLO: this node's and its peers'.
    std::vector<std::string> runtimes_accepted() const;

    // This node's CAPACITY lines.
    std::vector<cloudproto::RuntimeCapacity> capacity() const;

    // RETURN from `peer`: whether it may give back `job_id` (the job
    // was relayed to it), and storing what it gave.
    enum class ReturnCheck {
        expected,
        already_stored,
        being_stored, // another RETURN of it is being stored
        not_relayed_there,
    };
    ReturnCheck check_return(const std::string& peer,
                             const std::string& job_id) const;
    void store_returned(const std::string& peer, cloudproto::JobReport report,
                        std::string out, std::string err, Spool::Done done);

    // Results owed to peers from before a restart.
    void owe_returns(
        const std::map<std::string, std::vector<std::string>>& owed);

    // `peer` relayed `job_id` again, the same octets: its result is owed
    // to that peer too, once stored; `done` says whether it is.
    void owe_also(const std::string& job_id, const std::string& peer,
                  Spool::Done done);

    // Places the jobs that wait, now that something has changed.
    void place_waiting();

    // The result of `job`, relayed in, is stored: it goes back.
    void give_back(const Job& job);

    std::size_t waiting() const { return waiting_.size(); }

private:
    using Clock = std::chrono::steady_clock;
    enum class Place { here, peer, wait, nowhere };
    struct Choice {
        Place place;
        PeerLink* link = nullptr;
        const char* why = ""; // of a wait, for the log
    };
    // A job and a peer: a RELAY of that job to that peer, or a RETURN of
    // its result there.
    using JobPeer = std::pair<std::string, std::string>;
    struct BackOff {
        unsigned failures = 0;
        Clock::time_point not_before{};
    };
    using BackOffs = std::map<JobPeer, BackOff>;

    Choice choose(Job& job);
    void relay(Job& job, PeerLink& link);
    void relayed(const std::string& id, RelayOutcome outcome,
                 const std::string& reply);
    void give_back(const std::string& id, const std::string& peer);
    void give_back_owed();
    PeerLink* link(const std::string& name) const;
    bool fits(const Job& job, const PeerLink& link) const;
    bool within_hop_limit(const Job& job, const PeerLink& link) const;
    std::vector<std::string> owed_for(const Job& job) const;

    // Retries (proto-spec "Custody along a relay"): growing waits per job
    // and peer, and one timer for them all.
    std::chrono::seconds back_off(BackOffs& offs, const JobPeer& key);
    bool backing_off(const BackOffs& offs, const JobPeer& key) const;
    void forget_back_offs(const std::string& id);
    void wake_at(Clock::time_point when);
    void woken();

    asio::io_context& io_;
    const Config& config_;
    JobTable& jobs_;
    Spool& spool_;
    Scheduler& scheduler_;
    std::optional<asio::ssl::context> tls_;
    std::list<PeerLink> links_;

    std::deque<std::string> waiting_;
    // Why each waiting job waits, as last logged.
    std::map<std::string, std::string> wait_logged_;
    bool placing_ = false;
    bool place_again_ = false;
    BackOffs relay_back_offs_;
    BackOffs return_back_offs_;
    asio::steady_timer retry_timer_;
    bool retry_armed_ = false;
    Clock::time_point retry_due_{};
    // Results owed to peers (job, peer), and those on their way now.
    std::set<JobPeer> owed_;
    std::set<JobPeer> giving_back_;
    std::set<std::string> returning_; // results from peers being stored
    bool stopped_ = false;
};

} // namespace cloudnode
