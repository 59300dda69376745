#include "node/peer_link.hpp"

#include "node/peer_trust.hpp"

#include "cloudproto/log.hpp"
#include "cloudproto/protocol.hpp"
#include "cloudproto/text.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>

namespace cloudnode {

namespace log = cloudproto::log;
namespace code = cloudproto::reply_code;
using Clock = std::chrono::steady_clock;

namespace {

// A peer that cannot be reached is tried again after these delays,
// doubled each time.
constexpr std::chrono::milliseconds first_reconnect_delay{500};
constexpr std::chrono::milliseconds max_reconnect_delay{5000};

std::string reply_text(const cloudproto::Reply& r) {
    return fmt::format("{} {}", r.code, r.last_line());
}

// Whether the link is of no use after this reply (proto-spec 16.10): the
// peer closes the session after it (421, 221, 552; 500 and 501 to a
// command with a payload may), or does not take this node for a peer
// (530).
bool ends_link(int reply_code, bool payload_verb) {
    switch (reply_code) {
    case code::closing:
    case code::unavailable:
    case code::peer_required:
    case code::job_too_large:
        return true;
    case code::syntax_error:
    case code::parameter_error:
        return payload_verb;
    default:
        return false;
    }
}

} // namespace

std::string_view to_string(RelayOutcome outcome) {
    constexpr std::string_view names[] = {"accepted", "not-taken", "refused",
                                          "in-doubt", "not-sent"};
    return names[static_cast<int>(outcome)];
}

PeerLink::PeerLink(asio::io_context& io, const Config& config, const Peer& peer,
                   asio::ssl::context& tls)
    : io_(io), config_(config), peer_(peer), tls_(tls), wake_(io),
      reconnect_delay_(first_reconnect_delay) {}

void PeerLink::start(std::function<void()> changed) {
    changed_ = std::move(changed);
    asio::co_spawn(io_, run(), [name = peer_.name](std::exception_ptr e) {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            log::error("-", "peer", "crashed", "name={} error={}", name,
                       log::value(ex.what()));
        }
    });
}

void PeerLink::stop() {
    stopped_ = true;
    wake_.cancel();
    if (session_)
        session_->close();
    fail_tasks();
}

bool PeerLink::runs(std::string_view runtime) const {
    if (!capabilities_)
        return false;
    const auto& r = capabilities_->runtimes;
    return std::find(r.begin(), r.end(), runtime) != r.end();
}

cloudproto::RuntimeCapacity PeerLink::room(const std::string& runtime) const {
    auto it = room_.find(runtime);
    if (it == room_.end())
        return {runtime, 0, 0};
    return it->second;
}

void PeerLink::take_room(const std::string& runtime) {
    auto it = room_.find(runtime);
    if (it != room_.end() && it->second.free_slots > 0) {
        --it->second.free_slots;
        ++it->second.queued_jobs;
    }
}

void PeerLink::forget_room(const std::string& runtime) {
    auto it = room_.find(runtime);
    if (it != room_.end())
        it->second.free_slots = 0;
}

void PeerLink::relay(Relay relay) {
    ++relays_pending_;
    relay.done = [this, done = std::move(relay.done)](
                     RelayOutcome o, const std::string& reply) {
        --relays_pending_;
        done(o, reply);
    };
    tasks_.push_back(std::move(relay));
    if (!up_ || stopped_)
        asio::post(io_, [this] { fail_tasks(); });
    wake_.cancel();
}

void PeerLink::give_back(Return ret) {
    tasks_.push_back(std::move(ret));
    if (!up_ || stopped_)
        asio::post(io_, [this] { fail_tasks(); });
    wake_.cancel();
}

// Nothing queued may wait for a link that is down: relays go elsewhere,
// returns wait for the link to come back.
void PeerLink::fail_tasks() {
    auto tasks = std::move(tasks_);
    tasks_.clear();
    for (auto& task : tasks) {
        if (auto* r = std::get_if<Relay>(&task))
            r->done(RelayOutcome::not_sent, "link down");
        else
            std::get<Return>(task).done(ReturnOutcome::not_sent, "link down");
    }
}

void PeerLink::went_down(const std::string& reason) {
    if (!up_)
        return;
    log::info("-", "peer", "down", "name={} reason={}", peer_.name,
              log::value(reason.empty() ? "closed" : reason));
    up_ = false;
    reconnect_after_ = Clock::now() + first_reconnect_delay;
    if (session_)
        session_->close();
    fail_tasks();
    if (changed_)
        changed_();
}

// One connection after another, for as long as the node runs.
asio::awaitable<void> PeerLink::run() {
    while (!stopped_) {
        std::error_code ec;
        auto token = asio::redirect_error(asio::use_awaitable, ec);
        if (!up_) {
            if (Clock::now() < reconnect_after_) {
                wake_.expires_at(reconnect_after_);
                co_await wake_.async_wait(token);
                continue;
            }
            bool connected = co_await connect();
            if (stopped_)
                break;
            if (!connected) {
                wake_.expires_after(reconnect_delay_);
                reconnect_delay_ = std::min(
                    2 * reconnect_delay_, Clock::duration(max_reconnect_delay));
                co_await wake_.async_wait(token);
                continue;
            }
            reconnect_delay_ = first_reconnect_delay;
            up_ = true;
            down_reason_.clear();
            log::info("-", "peer", "up", "name={} runtimes={}", peer_.name,
                      fmt::join(capabilities_->runtimes, ","));
            next_capacity_ask_ =
                Clock::now() + config_.federation.capacity_interval;
            if (changed_)
                changed_();
            continue;
        }

        bool alive = true;
        if (!tasks_.empty()) {
            Task task = std::move(tasks_.front());
            tasks_.pop_front();
            alive = co_await serve(task);
        } else if (Clock::now() >= next_capacity_ask_) {
            alive = co_await ask_capacity();
        } else {
            wake_.expires_at(next_capacity_ask_);
            co_await wake_.async_wait(token);
        }
        if (!alive && !stopped_)
            went_down(session_->error());
    }
}

// Connects, checks the certificate, says HELLO; false when the peer
// cannot be used now (logged once until it changes).
asio::awaitable<bool> PeerLink::connect() {
    session_ = std::make_unique<cloudproto::ClientSession>(
        io_.get_executor(), &tls_, config_.federation.relay_timeout);
    std::string why;
    bool untrusted = false;
    auto greeting = co_await session_->connect(peer_.host, peer_.port, false);
    if (!greeting) {
        why = session_->error();
    } else if (greeting->code != code::greeting) {
        why = "greeted with " + reply_text(*greeting);
    } else if (!certificate_proves_peer()) {
        why = "its certificate does not prove it is " + peer_.name;
        untrusted = true;
    } else {
        auto hello = co_await session_->hello(config_.name);
        if (!hello)
            why = session_->error();
        else if (hello->code != code::ok)
            why = "HELLO answered " + reply_text(*hello);
        else if (!session_->capabilities().has("RELAY"))
            why = "it does not offer RELAY (not a federation peer)";
    }
    if (why.empty()) {
        // Up once a first CAPACITY is read (proto-spec 16.10).
        auto capacity = co_await session_->capacity();
        if (!capacity)
            why = session_->error();
        else if (capacity->code != code::ok)
            why = "CAPACITY answered " + reply_text(*capacity);
        else
            read_room(*capacity);
    }
    if (why.empty()) {
        capabilities_ = session_->capabilities();
        co_return true;
    }

    session_->close();
    if (why != down_reason_) {
        // A certificate that proves nothing is the operator's to fix.
        auto level = untrusted ? log::Level::error : log::Level::info;
        log::emit(level, "-", "peer", "unreachable",
                  "name={} address={}:{} reason={}", peer_.name, peer_.host,
                  peer_.port, log::value(why));
        down_reason_ = why;
    }
    co_return false;
}

bool PeerLink::certificate_proves_peer() {
    return proves(config_.federation, peer_, session_->peer_certificate());
}

// Reads the peer's CAPACITY into the view; false if the link is lost.
asio::awaitable<bool> PeerLink::ask_capacity() {
    next_capacity_ask_ = Clock::now() + config_.federation.capacity_interval;
    auto reply = co_await session_->capacity();
    if (!reply)
        co_return false;
    if (ends_link(reply->code, false)) {
        log::warn("-", "peer", "capacity-refused", "name={} reply={}",
                  peer_.name, log::value(reply_text(*reply)));
        lost_by_reply(*reply);
        co_return false;
    }
    if (reply->code != code::ok) {
        log::warn("-", "peer", "capacity-refused", "name={} reply={}",
                  peer_.name, log::value(reply_text(*reply)));
        co_return true;
    }
    read_room(*reply);
    if (changed_)
        changed_();
    co_return true;
}

void PeerLink::read_room(const cloudproto::Reply& reply) {
    room_.clear();
    for (const auto& line : reply.lines) {
        if (auto c = cloudproto::parse_capacity(line))
            room_[c->runtime] = *c;
    }
    log::trace("-", "peer", "capacity", "name={} runtimes={}", peer_.name,
               room_.size());
}

// Carries one command; false if the link is lost.
asio::awaitable<bool> PeerLink::serve(Task& task) {
    if (auto* r = std::get_if<Relay>(&task)) {
        auto reply = co_await session_->relay(r->job_id, r->descriptor,
                                              r->script, r->route);
        if (!reply) {
            // Down first, so that the job is not sent back to this link.
            auto outcome = session_->sent_whole() ? RelayOutcome::in_doubt
                                                  : RelayOutcome::not_taken;
            auto error = session_->error();
            went_down(error);
            r->done(outcome, error);
            co_return false;
        }
        // The peer's room has changed: ask again once idle.
        next_capacity_ask_ = Clock::now();
        auto outcome = reply->code / 100 == 2   ? RelayOutcome::accepted
                       : reply->code / 100 == 4 ? RelayOutcome::not_taken
                                                : RelayOutcome::refused;
        auto words = cloudproto::split_words(reply->last_line());
        if (outcome == RelayOutcome::accepted &&
            (words.empty() || words[0] != r->job_id)) {
            // It took something, not clearly this job: ask it again.
            log::warn(r->job_id, "peer", "bad-reply", "name={} reply={}",
                      peer_.name, log::value(reply_text(*reply)));
            went_down("its RELAY reply names another job");
            r->done(RelayOutcome::in_doubt, reply_text(*reply));
            co_return false;
        }
        if (ends_link(reply->code, true)) {
            // Down first, as above.
            lost_by_reply(*reply);
            r->done(outcome, reply_text(*reply));
            co_return false;
        }
        r->done(outcome, reply_text(*reply));
        co_return true;
    }

    auto& ret = std::get<Return>(task);
    auto reply =
        co_await session_->give_back(ret.job_id, ret.report, ret.out, ret.err);
    if (!reply) {
        auto error = session_->error();
        went_down(error);
        ret.done(ReturnOutcome::not_taken, error);
        co_return false;
    }
    bool settled = reply->code / 100 == 2 || reply->code / 100 == 5;
    bool ends = ends_link(reply->code, true);
    if (ends)
        lost_by_reply(*reply);
    ret.done(settled ? ReturnOutcome::settled : ReturnOutcome::not_taken,
             reply_text(*reply));
    co_return !ends;
}

// The peer ended the link with `reply`; the reason the log gives.
void PeerLink::lost_by_reply(const cloudproto::Reply& reply) {
    went_down("it answered " + reply_text(reply));
}

} // namespace cloudnode
