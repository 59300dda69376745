#include "node/session.hpp"
#include "node/platform/runtimes.hpp"
#include "node/until_called.hpp"

#include "cloudproto/descriptor.hpp"
#include "cloudproto/job_id.hpp"
#include "cloudproto/log.hpp"
#include "cloudproto/protocol.hpp"
#include "cloudproto/reply.hpp"
#include "cloudproto/text.hpp"

#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <functional>

namespace cloudnode {

using cloudproto::JobState;
namespace code = cloudproto::reply_code;
namespace log = cloudproto::log;

namespace {

// HELLO echoes the name: it must leave room in the reply line.
constexpr std::size_t max_client_name_bytes = 255;

// How long a closing session may take to say goodbye, and how long it
// reads and drops what a client still sends after a reply that closes.
constexpr std::chrono::seconds goodbye_timeout{5};
constexpr std::chrono::seconds drain_timeout{2};

std::string upper(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    return s;
}

// Octet counts: two of them add up without overflow.
constexpr std::size_t max_count_digits = 18;

std::optional<std::uint64_t> parse_size(std::string_view text) {
    return cloudproto::parse_count(text, max_count_digits);
}

// param-key "=" param-value, as the spec's ABNF has it.
bool is_submit_param(std::string_view param) {
    auto eq = param.find('=');
    if (eq == 0 || eq == std::string_view::npos || eq + 1 == param.size())
        return false;
    for (char c : param.substr(0, eq)) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

} // namespace

std::string_view to_string(Session::State state) {
    constexpr std::string_view names[] = {"handshake", "fresh", "ready",
                                          "closing"};
    return names[static_cast<int>(state)];
}

const Session::Verb Session::verbs[] = {
    {"HELLO", false, false, false, 1, 1, &Session::proceed_hello,
     "HELLO <client-name>"},
    // SUBMIT, RELAY and RETURN check HELLO themselves, once their payload
    // is out of the way.
    {"SUBMIT", false, true, false, 3, 32, &Session::proceed_submit,
     "SUBMIT <job-id> <descriptor-octets> <script-octets> [KEY=VALUE ...]"},
    {"STATUS", true, false, false, 1, 1, &Session::proceed_status,
     "STATUS <job-id>"},
    {"WAIT", true, false, false, 2, 2, &Session::proceed_wait,
     "WAIT <job-id> <seconds>"},
    {"RESULT", true, false, false, 1, 1, &Session::proceed_result,
     "RESULT <job-id>"},
    {"NOOP", false, false, false, 0, 0, &Session::proceed_noop, "NOOP"},
    {"HELP", false, false, false, 0, 1, &Session::proceed_help, "HELP"},
    {"QUIT", false, false, false, 0, 0, &Session::proceed_quit, "QUIT"},
    // Between peers only.
    {"CAPACITY", true, false, true, 0, 0, &Session::proceed_capacity,
     "CAPACITY"},
    {"RELAY", false, true, true, 3, 32, &Session::proceed_relay,
     "RELAY <job-id> <descriptor-octets> <script-octets> HOPS=<n> "
     "TRACE=<node>[,<node>...]"},
    {"RETURN", false, true, true, 4, 4, &Session::proceed_return,
     "RETURN <job-id> <report-octets> <stdout-octets> <stderr-octets>"},
};

Session::Session(SessionContext& context,
                 std::shared_ptr<cloudproto::Connection> connection,
                 std::string id)
    : ctx_(context), connection_(std::move(connection)), id_(std::move(id)) {}

void Session::enter_state(State next) {
    log::trace(id_, "session", "state", "from={} to={}", to_string(state_),
               to_string(next));
    state_ = next;
}

void Session::reply(int c, std::string_view text) {
    log::trace(id_, "session", "send", "code={} text={}", c, log::value(text));
    connection_->queue(cloudproto::encode_reply(c, text));
}

void Session::reply(int c, const std::vector<std::string>& lines) {
    log::trace(id_, "session", "send", "code={} lines={}", c, lines.size());
    connection_->queue(cloudproto::encode_reply(c, lines));
}

void Session::reply_and_close(int c, std::string_view text,
                              std::string_view reason, bool drain) {
    reply(c, text);
    close_reason_ = reason;
    drain_on_close_ = drain;
    enter_state(State::closing);
}

// Node shutdown: the session ends what it is doing (a WAIT gets its
// final line), says 421 and closes.
void Session::stop() {
    stopped_ = true;
    if (wake_)
        wake_->cancel();
    connection_->cancel();
}

asio::awaitable<void> Session::run() {
    const auto& cfg = ctx_.config;
    log::info(id_, "session", "connected", "remote={} tls={}",
              connection_->remote(), connection_->is_tls() ? "yes" : "no");

    // TLS first, within its own time limit.
    connection_->arm(cfg.handshake_timeout);
    // (co_await stays out of conditions: g++ 12 miscompiles some.)
    auto handshake = co_await connection_->server_handshake();
    if (handshake) {
        log::info(id_, "session", "tls-failed", "error={}",
                  log::value(handshake.message()));
        co_return co_await close("tls");
    }

    identify_peer();
    reply(code::greeting,
          fmt::format("{} {} ready", cfg.name, cloudproto::protocol_name));
    enter_state(State::fresh);

    // One command after another until someone ends it.
    while (state_ != State::closing) {
        if (stopped_) {
            reply_and_close(code::unavailable, cfg.name + " shutting down",
                            "shutdown");
            break;
        }
        connection_->arm(cfg.idle_timeout);
        auto line = co_await connection_->read_line();
        if (stopped_)
            continue;
        if (line.ec && connection_->send_failed()) {
            // It does not read its replies: one more would be lost too.
            auto reason =
                line.ec == asio::error::timed_out ? "send-timeout" : "io-error";
            co_return co_await close(reason);
        }
        if (line.ec == asio::error::timed_out) {
            reply_and_close(code::unavailable, cfg.name + " idle timeout",
                            "idle");
            break;
        }
        if (line.ec) {
            auto reason = line.ec == asio::error::eof ? "eof" : "io-error";
            co_return co_await close(reason);
        }
        if (line.kind == cloudproto::LineEvent::Kind::too_long) {
            log::info(id_, "session", "refused", "reason=line-too-long");
            auto text = fmt::format("line too long (the limit is {} octets)",
                                    cloudproto::max_line_bytes);
            if (may_carry_payload(line.text, false))
                reply_and_close(code::syntax_error, text, "line-too-long",
                                true);
            else
                reply(code::syntax_error, text);
            continue;
        }
        co_await dispatch(line.text);
    }
    co_await close(close_reason_);
}

// Whether a payload may follow a refused line, whose octets must then
// never run as commands: its verb (the letters after any leading SP or
// HTAB) is one that carries a payload, or, of a line known only by its
// first octets (`whole` false), the verb may go on past them.
bool Session::may_carry_payload(std::string_view line, bool whole) const {
    auto start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos)
        return !whole;
    auto end = start;
    while (end < line.size() && ((line[end] >= 'A' && line[end] <= 'Z') ||
                                 (line[end] >= 'a' && line[end] <= 'z')))
        ++end;
    if (end == line.size() && !whole)
        return true;
    auto verb = upper(std::string(line.substr(start, end - start)));
    return std::any_of(std::begin(verbs), std::end(verbs), [&](const Verb& v) {
        return v.carries_payload && v.name == verb;
    });
}

// Returns what is wrong with a command line's octets, if anything.
std::optional<std::string> Session::check_line(std::string_view line) const {
    for (std::size_t i = 0; i < line.size(); ++i) {
        auto c = static_cast<unsigned char>(line[i]);
        if (c < 0x20 || c > 0x7e)
            return fmt::format("command lines are printable ASCII; octet "
                               "0x{:02x} at column {}",
                               c, i + 1);
    }
    return std::nullopt;
}

asio::awaitable<void> Session::dispatch(const std::string& line) {
    log::trace(id_, "session", "recv", "line={}", log::value(line));
    if (auto bad = check_line(line)) {
        log::info(id_, "session", "refused", "reason=bad-octets");
        if (may_carry_payload(line, true))
            reply_and_close(code::syntax_error, *bad, "bad-octets", true);
        else
            reply(code::syntax_error, *bad);
        co_return;
    }

    auto words = cloudproto::split_words(line);
    if (words.empty()) {
        reply(code::syntax_error, "empty line");
        co_return;
    }
    Command cmd{upper(words.empty() ? std::string() : words[0]),
                {words.begin() + (words.empty() ? 0 : 1), words.end()}};
    bool federated = !ctx_.config.federation.peers.empty();
    auto verb =
        std::find_if(std::begin(verbs), std::end(verbs), [&](const Verb& v) {
            return v.name == cmd.verb && (federated || !v.federation);
        });
    if (verb == std::end(verbs)) {
        reply(code::syntax_error, "unknown verb " + log::value(cmd.verb, 32));
        co_return;
    }
    if (verb->needs_hello && state_ != State::ready) {
        reply(code::bad_sequence, "say HELLO first");
        co_return;
    }
    if (cmd.args.size() < verb->min_args || cmd.args.size() > verb->max_args) {
        if (verb->carries_payload) {
            // Where its payload ends is unknown: nothing can follow.
            reply_and_close(code::parameter_error,
                            fmt::format("syntax: {}", verb->syntax),
                            "bad-submit", true);
            co_return;
        }
        reply(code::parameter_error, fmt::format("syntax: {}", verb->syntax));
        co_return;
    }
    co_await (this->*(verb->proceed))(cmd);
}

asio::awaitable<void> Session::proceed_hello(const Command& cmd) {
    const auto& cfg = ctx_.config;
    if (cmd.args[0].size() > max_client_name_bytes) {
        reply(code::parameter_error,
              fmt::format("client name longer than {} octets",
                          max_client_name_bytes));
        co_return;
    }
    client_name_ = cmd.args[0];

    // A peer learns what this node runs; a customer, what it accepts.
    std::vector<std::string> names;
    if (peer_) {
        for (const auto& rt : cfg.runtimes)
            names.push_back(rt.name);
    } else {
        names = ctx_.router.runtimes_accepted();
    }
    std::string runtimes = fmt::format("{}", fmt::join(names, " "));
    std::vector<std::string> lines = {
        fmt::format("{} hello {}", cfg.name, client_name_),
        fmt::format("VERSION {}", cloudproto::protocol_version),
        "RUNTIMES " + runtimes,
        fmt::format("MAX-JOB-BYTES {}", cfg.max_job_bytes),
        fmt::format("MAX-OUTPUT-BYTES {}", cfg.max_output_bytes),
        fmt::format("DEFAULT-TIMEOUT-SECONDS {}", cfg.default_timeout.count()),
        fmt::format("MAX-TIMEOUT-SECONDS {}", cfg.max_timeout.count()),
        fmt::format("IDLE-TIMEOUT-SECONDS {}", cfg.idle_timeout.count()),
        fmt::format("MAX-MEMORY-BYTES {}", cfg.max_job.memory_bytes),
        fmt::format("MAX-CPU-SECONDS {}", cfg.max_job.cpu_seconds),
        fmt::format("MAX-PROCESSES {}", cfg.max_job.processes),
        fmt::format("MAX-DISK-BYTES {}", cfg.max_job.disk_bytes),
        fmt::format("MAX-OPEN-FILES {}", cfg.max_job.open_files),
        "CONTAINMENT " + ctx_.containment.describe(),
        "WAIT",
        "PIPELINING",
    };
    if (peer_) {
        lines.push_back(fmt::format("RELAY {}", cfg.federation.hop_limit));
        lines.push_back("CAPACITY");
        lines.push_back("RETURN");
    }
    reply(code::ok, lines);
    if (state_ != State::ready) {
        log::info(id_, "session", "hello", "client={}",
                  log::value(client_name_, 64));
        enter_state(State::ready);
    }
    co_return;
}

asio::awaitable<void> Session::proceed_submit(const Command& cmd) {
    co_await receive_job(cmd);
}

// Reads a payload of `total` octets; nullopt when the session ends
// instead (timed out, or cut).
asio::awaitable<std::optional<std::string>>
Session::read_payload(std::uint64_t total) {
    const auto& cfg = ctx_.config;
    std::string payload;
    connection_->arm(cfg.idle_timeout);
    auto ec = co_await connection_->read_payload(total, payload);
    if (ec == asio::error::timed_out) {
        reply_and_close(code::unavailable, cfg.name + " idle timeout",
                        "payload-timeout");
        co_return std::nullopt;
    }
    if (ec) {
        close_reason_ = "payload-cut";
        enter_state(State::closing);
        co_return std::nullopt;
    }
    co_return payload;
}

// SUBMIT, or RELAY with the route the job came by (checked once the
// payload is read, in the spec's order).
asio::awaitable<void> Session::receive_job(const Command& cmd) {
    const auto& cfg = ctx_.config;
    const std::string& id = cmd.args[0];
    bool relay = cmd.verb == "RELAY";
    auto dsize = parse_size(cmd.args[1]);
    auto ssize = parse_size(cmd.args[2]);

    // The line itself: without sizes nothing can follow.
    if (!dsize || !ssize) {
        reply_and_close(code::parameter_error,
                        "octet counts must be decimal numbers of at most 18 "
                        "digits",
                        "bad-submit", true);
        co_return;
    }
    std::uint64_t total = *dsize + *ssize;
    if (total > cfg.max_job_bytes) {
        log::info(id_, "session", "refused", "reason=too-large bytes={}",
                  total);
        reply_and_close(code::job_too_large,
                        fmt::format("job of {} octets exceeds MAX-JOB-BYTES {}",
                                    total, cfg.max_job_bytes),
                        "too-large", true);
        co_return;
    }

    // The payload, whatever is wrong with the rest.
    auto payload = co_await read_payload(total);
    if (!payload)
        co_return;
    cloudproto::RelayRoute route;
    bool checked =
        check_submit_args(cmd) && (!relay || check_route(cmd, route));
    if (!checked) {
        log::info(id, "job", "refused", "session={} reason=bad-command", id_);
        co_return;
    }

    Job job;
    job.report.job_id = id;
    job.route = std::move(route);
    job.descriptor_text = payload->substr(0, *dsize);
    job.script = payload->substr(*dsize);
    job.digest = payload_digest(job.descriptor_text, job.script);
    // A peer relaying a job this node holds is owed its result too.
    Job* known = ctx_.jobs.find(id);
    bool relayed_again =
        known && relay && known->digest == job.digest && known->durable;
    if (relayed_again) {
        co_await owe_result_too(id);
        co_return;
    }
    if (known) {
        answer_known(*known, job);
        co_return;
    }

    if (auto refusal = check_descriptor(job)) {
        log::info(id, "job", "refused", "session={} reason={}", id_,
                  log::value(*refusal));
        co_return;
    }
    auto held = ctx_.scheduler.queued() + ctx_.router.waiting();
    if (held >= cfg.max_queued_jobs) {
        reply(code::insufficient_storage,
              fmt::format("{} not stored: insufficient storage (the queue "
                          "holds {} jobs)",
                          id, cfg.max_queued_jobs));
        co_return;
    }

    bool stored = co_await store(job);
    if (stored)
        reply(code::ok, id + " accepted");
}

// The rest of a SUBMIT line, once its payload is read, in the spec's
// order (8.5); replies and returns false at the first fault.
bool Session::check_submit_args(const Command& cmd) {
    if (state_ != State::ready) {
        reply(code::bad_sequence, "say HELLO first");
        return false;
    }
    if (!cloudproto::is_valid_job_id(cmd.args[0])) {
        reply(code::parameter_error, bad_job_id);
        return false;
    }
    for (std::size_t i = 3; i < cmd.args.size(); ++i) {
        if (!is_submit_param(cmd.args[i])) {
            reply(code::parameter_error,
                  "parameters are KEY=VALUE, KEY of letters, digits, '-'");
            return false;
        }
    }
    if (cmd.args.size() > 3 && cmd.verb == "SUBMIT") {
        // Version 1 announces no SUBMIT parameter.
        auto key = cmd.args[3].substr(0, cmd.args[3].find('='));
        reply(code::parameter_not_recognised,
              "parameter " + key + " not recognised");
        return false;
    }
    return true;
}

// The same job handed in again: answered as the first time, and nothing
// runs; other octets under the same id are a conflict.
void Session::answer_known(const Job& known, const Job& again) {
    const std::string& id = known.id();
    if (known.digest != again.digest) {
        log::info(id, "job", "refused", "session={} reason=id-conflict", id_);
        reply(code::job_id_conflict,
              fmt::format("job id {} already used by another job", id));
    } else if (!known.durable) {
        reply(code::local_error,
              fmt::format("{} is being stored; try again", id));
    } else {
        log::info(id, "job", "duplicate", "session={}", id_);
        reply(code::ok, id + " already accepted");
    }
}

// Parses the descriptor into `job`; on refusal, replies and returns why
// for the log.
std::optional<std::string> Session::check_descriptor(Job& job) {
    const auto& cfg = ctx_.config;
    auto parsed = cloudproto::parse_descriptor(job.descriptor_text);
    if (auto* err = std::get_if<cloudproto::DescriptorError>(&parsed)) {
        reply(code::descriptor_rejected,
              "descriptor rejected: " + err->to_string());
        return err->to_string();
    }
    auto& d = std::get<cloudproto::Descriptor>(parsed);
    job.descriptor = d;
    auto offered = ctx_.router.offer(job);
    switch (offered.offer) {
    case Router::Offer::here:
    case Router::Offer::peers:
        break;
    case Router::Offer::hop_limit:
    case Router::Offer::loop:
        refuse_route(job, offered);
        return offered.offer == Router::Offer::loop ? "runtime-in-trace"
                                                    : "runtime-past-hop-limit";
    case Router::Offer::not_reachable:
        reply(code::local_error,
              fmt::format("{} not stored: no reachable provider offers "
                          "runtime {} now; try again later",
                          job.id(), d.runtime));
        return "runtime-not-reachable";
    case Router::Offer::nobody:
        reply(code::runtime_not_offered,
              fmt::format("runtime {} is not offered by any provider",
                          d.runtime));
        return "runtime-not-offered";
    }
    if (d.timeout && *d.timeout > cfg.max_timeout) {
        auto text = fmt::format("timeout_seconds: at most {} on this node",
                                cfg.max_timeout.count());
        reply(code::descriptor_rejected, "descriptor rejected: " + text);
        return text;
    }
    if (offered.offer == Router::Offer::here) {
        if (auto why = arguments_problem(d); !why.empty()) {
            reply(code::descriptor_rejected,
                  "descriptor rejected: args: " + why);
            return "args: " + why;
        }
    }
    job.descriptor = std::move(d);
    return std::nullopt;
}

// Why this node's program for the job's runtime could not receive its
// arguments unchanged (a Windows command line cannot carry every
// string), or an empty string when it can. The script's path is one the
// executor would choose, for a runtime whose program sees it.
std::string Session::arguments_problem(const cloudproto::Descriptor& d) const {
    const Runtime* runtime = ctx_.config.find_runtime(d.runtime);
    if (!runtime)
        return {};
    const auto script =
        ctx_.config.work_dir / "job" / ("job." + runtime->extension);
    return platform::argument_problem(
        Runtime::with_script(runtime->command_with(d.args), script.string()));
}

// Custody: the job is in the table at once (so that a second copy of it
// finds it) but is only the node's once the spool has it on disk.
asio::awaitable<bool> Session::store(Job& candidate) {
    auto now = cloudproto::Clock::now();
    candidate.report.accepted = now;
    candidate.report.runtime = candidate.descriptor.runtime;
    candidate.report.node = ctx_.config.name;
    candidate.report.trace = candidate.route.trace_text();
    candidate.report.state = JobState::queued;
    std::string id = candidate.id();
    Job& job = ctx_.jobs.insert(std::move(candidate));

    std::string error;
    co_await until_called([&](auto called) {
        ctx_.spool.store_job(job, [called, &error](const std::string& e) {
            error = e;
            called();
        });
    });

    Job* now_job = ctx_.jobs.find(id);
    if (!error.empty()) {
        log::error(id, "job", "refused", "session={} reason=spool error={}",
                   id_, log::value(error));
        ctx_.jobs.erase(id);
        reply(code::local_error, id + " not stored: the spool failed");
        co_return false;
    }
    now_job->durable = true;
    log::info(id, "job", "accepted",
              "session={} runtime={} args={} descriptor_bytes={} "
              "script_bytes={} from={} hops={}",
              id_, now_job->descriptor.runtime, now_job->descriptor.args.size(),
              now_job->descriptor_text.size(), now_job->script.size(),
              peer_ ? peer_->name : "customer", now_job->route.hops);
    ctx_.router.place(*now_job);
    co_return true;
}

asio::awaitable<void> Session::proceed_noop(const Command&) {
    reply(code::ok, "ok");
    co_return;
}

asio::awaitable<void> Session::proceed_help(const Command&) {
    // A peer sees the verbs between peers too.
    std::vector<std::string> lines;
    for (const auto& v : verbs) {
        if (!v.federation || peer_)
            lines.emplace_back(v.syntax);
    }
    lines.emplace_back("end of help");
    reply(code::help, lines);
    co_return;
}

asio::awaitable<void> Session::proceed_quit(const Command&) {
    reply_and_close(code::closing, ctx_.config.name + " closing", "quit");
    co_return;
}

// The one way out: say what is queued, close, log it once.
asio::awaitable<void> Session::close(std::string_view reason) {
    enter_state(State::closing);
    if (drain_on_close_)
        co_await connection_->drain(drain_timeout);
    co_await connection_->shutdown(goodbye_timeout);
    log::info(id_, "session", "disconnected", "reason={}", reason);
}

} // namespace cloudnode
