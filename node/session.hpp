// The server's side of one connection: a state machine driven by a verb
// table (proto-spec section "Session"). Each verb is one row: where it
// is allowed, how many arguments, and the proceed_ step that acts.
#pragma once

#include "node/config.hpp"
#include "node/job_table.hpp"
#include "node/router.hpp"
#include "node/scheduler.hpp"
#include "node/spool.hpp"

#include "cloudproto/connection.hpp"

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cloudnode {

// What a session may use of the node.
struct SessionContext {
    const Config& config;
    const platform::Containment& containment;
    JobTable& jobs;
    Spool& spool;
    Scheduler& scheduler;
    Router& router;
};

class Session : public std::enable_shared_from_this<Session> {
public:
    enum class State { handshake, fresh, ready, closing };

    Session(SessionContext& context,
            std::shared_ptr<cloudproto::Connection> connection, std::string id);

    // The whole life of the session, from handshake to disconnection.
    asio::awaitable<void> run();

    // Node shutdown: ends the session at its next step.
    void stop();

    const std::string& id() const { return id_; }

private:
    struct Command {
        std::string verb; // upper case
        std::vector<std::string> args;
    };
    using Proceed = asio::awaitable<void> (Session::*)(const Command&);
    struct Verb {
        std::string_view name;
        bool needs_hello;
        bool carries_payload; // a bad line leaves its end unknown
        bool federation;      // a node without peers does not know it
        std::size_t min_args;
        std::size_t max_args;
        Proceed proceed;
        std::string_view syntax; // for HELP and 501 replies
    };
    static const Verb verbs[];
    static constexpr std::string_view bad_job_id =
        "job id must be 16 to 64 of A-Z a-z 0-9 - _";

    asio::awaitable<void> proceed_hello(const Command& cmd);
    asio::awaitable<void> proceed_submit(const Command& cmd);
    asio::awaitable<void> proceed_status(const Command& cmd);
    asio::awaitable<void> proceed_wait(const Command& cmd);
    asio::awaitable<void> proceed_result(const Command& cmd);
    asio::awaitable<void> proceed_noop(const Command& cmd);
    asio::awaitable<void> proceed_help(const Command& cmd);
    asio::awaitable<void> proceed_quit(const Command& cmd);
    // The verbs between peers: session_federation.cpp.
    asio::awaitable<void> proceed_capacity(const Command& cmd);
    asio::awaitable<void> proceed_relay(const Command& cmd);
    asio::awaitable<void> proceed_return(const Command& cmd);

    asio::awaitable<void> dispatch(const std::string& line);
    std::optional<std::string> check_line(std::string_view line) const;
    void identify_peer();
    bool check_peer(const Command& cmd, bool has_payload);
    // SUBMIT and RELAY: the command line, the payload, the job.
    asio::awaitable<void> receive_job(const Command& cmd);
    asio::awaitable<std::optional<std::string>>
    read_payload(std::uint64_t total);
    asio::awaitable<bool> read_kept(std::uint64_t n, std::uint64_t keep,
                                    std::string& kept);
    bool check_submit_args(const Command& cmd);
    bool check_route(const Command& cmd, cloudproto::RelayRoute& route);
    void refuse_route(const Job& job, const Router::Offered& offered);
    asio::awaitable<void> owe_result_too(const std::string& id);
    void answer_known(const Job& known, const Job& again);
    std::optional<std::string> check_descriptor(Job& job);
    std::string arguments_problem(const cloudproto::Descriptor& d) const;
    bool may_carry_payload(std::string_view line, bool whole) const;
    Job* check_job(const std::string& id);
    asio::awaitable<bool> store(Job& job);

    void enter_state(State next);
    void reply(int code, std::string_view text);
    void reply(int code, const std::vector<std::string>& lines);
    // Replies, then ends the session once the reply has left; with
    // `drain`, after reading and dropping what the client still sends.
    void reply_and_close(int code, std::string_view text,
                         std::string_view reason, bool drain = false);
    asio::awaitable<void> close(std::string_view reason);

    SessionContext& ctx_;
    std::shared_ptr<cloudproto::Connection> connection_;
    std::string id_;
    State state_ = State::handshake;
    std::string client_name_;
    const Peer* peer_ = nullptr; // proved by its certificate
    std::string close_reason_;
    bool drain_on_close_ = false;
    std::optional<asio::steady_timer> wake_; // WAIT sleeps on it
    bool stopped_ = false;
};

std::string_view to_string(Session::State state);

} // namespace cloudnode
