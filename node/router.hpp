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
        nobody,        // no provider offers it
    };
    Offer offer(const Job& job) const;

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
    void owe_returns(const std::map<std::string, std::string>& owed);

    // Places the jobs that wait, now that something has changed.
    void place_waiting();

    // The result of `job`, relayed in, is stored: it goes back.
    void give_back(const Job& job);

    std::size_t waiting() const { return waiting_.size(); }

private:
    enum class Place { here, peer, wait, nowhere };
    struct Choice {
        Place place;
        PeerLink* link = nullptr;
    };

    Choice choose(Job& job);
    void relay(Job& job, PeerLink& link);
    void retry_later(const std::string& id);
    void relayed(const std::string& id, RelayOutcome outcome,
                 const std::string& reply);
    void give_back(const std::string& id, const std::string& peer);
    void give_back_owed();
    PeerLink* link(const std::string& name) const;
    bool fits(const Job& job, const PeerLink& link) const;

    asio::io_context& io_;
    const Config& config_;
    JobTable& jobs_;
    Spool& spool_;
    Scheduler& scheduler_;
    std::optional<asio::ssl::context> tls_;
    std::list<PeerLink> links_;

    std::deque<std::string> waiting_;
    bool placing_ = false;
    bool place_again_ = false;
    // Jobs and results to try again after retry_delay.
    std::vector<std::string> later_;
    asio::steady_timer retry_timer_;
    bool retry_armed_ = false;
    // Results of jobs relayed in, owed to the peer they came from, and
    // those on their way now.
    std::map<std::string, std::string> owed_;
    std::map<std::string, bool> giving_back_;
    std::set<std::string> returning_; // results from peers being stored
    bool stopped_ = false;
};

} // namespace cloudnode
