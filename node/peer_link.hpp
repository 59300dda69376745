// This node's connection to one peer (proto-spec "Federation"): it
// connects and reconnects with back-off, proves the peer by its
// certificate, keeps the peer's capabilities and a view of its
// capacity, and carries RELAY and RETURN commands one at a time.
#pragma once

#include "node/config.hpp"

#include "cloudproto/client_session.hpp"
#include "cloudproto/federation.hpp"
#include "cloudproto/job_report.hpp"

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>

namespace cloudnode {

// How a RELAY ended, as the custody rules need to know it.
enum class RelayOutcome {
    accepted,  // 2xx: the peer holds the job now
    not_taken, // the peer does not have it: cut short, or 4xx
    refused,   // 5xx: the peer will never take it
    in_doubt,  // the command left whole, no reply came
    not_sent,  // the link was down: the peer saw none of it
};
std::string_view to_string(RelayOutcome outcome);

// How a RETURN ended.
enum class ReturnOutcome {
    settled,   // 2xx or 5xx: the peer took it, or never will
    not_taken, // 4xx, or no reply: send it again later
    not_sent,  // the link was down: send it when it is up
};

class PeerLink {
public:
    struct Relay {
        std::string job_id;
        std::string descriptor;
        std::string script;
        cloudproto::RelayRoute route;
        std::function<void(RelayOutcome, const std::string& reply)> done;
    };
    struct Return {
        std::string job_id;
        cloudproto::JobReport report;
        std::string out;
        std::string err;
        std::function<void(ReturnOutcome, const std::string& reply)> done;
    };

    PeerLink(asio::io_context& io, const Config& config, const Peer& peer,
             asio::ssl::context& tls);

    // Starts connecting; `changed` runs when the link comes up or goes
    // down, and when the peer's capacity is read.
    void start(std::function<void()> changed);
    void stop();

    const Peer& peer() const { return peer_; }
    const std::string& name() const { return peer_.name; }
    bool up() const { return up_; }
    // A RELAY is on its way: new jobs had better go elsewhere than wait
    // behind it (a peer that stalls holds up only what it was sent).
    bool busy() const { return relays_pending_ > 0; }

    // What the peer announced in its last HELLO; nullopt if it never
    // answered since this node started.
    const std::optional<cloudproto::Capabilities>& capabilities() const {
        return capabilities_;
    }
    bool runs(std::string_view runtime) const;

    // The view of the peer's room for `runtime`, as last read and lowered
    // by each job relayed there since.
    cloudproto::RuntimeCapacity room(const std::string& runtime) const;
    void take_room(const std::string& runtime);
    void forget_room(const std::string& runtime);

    void relay(Relay relay);
    void give_back(Return ret);

private:
    using Task = std::variant<Relay, Return>;

    asio::awaitable<void> run();
    asio::awaitable<bool> connect();
    asio::awaitable<bool> serve(Task& task);
    asio::awaitable<bool> ask_capacity();
    void went_down(const std::string& reason);
    void lost_by_reply(const cloudproto::Reply& reply);
    void read_room(const cloudproto::Reply& reply);
    void fail_tasks();
    bool certificate_proves_peer();

    asio::io_context& io_;
    const Config& config_;
    const Peer& peer_;
    asio::ssl::context& tls_;
    std::unique_ptr<cloudproto::ClientSession> session_;
    std::function<void()> changed_;
    asio::steady_timer wake_;
    std::deque<Task> tasks_;
    bool up_ = false;
    std::size_t relays_pending_ = 0;
    std::chrono::steady_clock::time_point reconnect_after_{};
    bool stopped_ = false;
    std::string down_reason_;
    std::chrono::steady_clock::time_point next_capacity_ask_{};
    std::chrono::steady_clock::duration reconnect_delay_;
    std::optional<cloudproto::Capabilities> capabilities_;
    std::map<std::string, cloudproto::RuntimeCapacity> room_;
};

} // namespace cloudnode
