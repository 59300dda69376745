// The verbs between peers: CAPACITY, RELAY and RETURN (proto-spec
// section "Federation"), and how a session knows it talks to a peer.
#include "node/peer_trust.hpp"
#include "node/session.hpp"
#include "node/until_called.hpp"

#include "cloudproto/job_id.hpp"
#include "cloudproto/log.hpp"
#include "cloudproto/protocol.hpp"
#include "cloudproto/text.hpp"
#include "cloudproto/tls.hpp"

#include <fmt/format.h>

namespace cloudnode {

namespace code = cloudproto::reply_code;
namespace log = cloudproto::log;

namespace {

// A RETURN's report: a few dozen short lines.
constexpr std::uint64_t max_report_bytes = 64 * 1024;

constexpr std::size_t max_count_digits = 18;

std::optional<std::uint64_t> parse_size(std::string_view text) {
    return cloudproto::parse_count(text, max_count_digits);
}

// The KEY value lines of a RETURN's report, each ending CRLF.
std::optional<cloudproto::JobReport> parse_report(std::string_view text) {
    std::vector<cloudproto::Field> fields;
    while (!text.empty()) {
        auto end = text.find("\r\n");
        if (end == std::string_view::npos)
            return std::nullopt;
        auto field = cloudproto::parse_field(text.substr(0, end));
        if (!field)
            return std::nullopt;
        fields.push_back(std::move(*field));
        text.remove_prefix(end + 2);
    }
    return cloudproto::JobReport::from_fields(fields);
}

} // namespace

// Who is on the other end is decided once, by the certificate alone.
void Session::identify_peer() {
    if (ctx_.config.federation.peers.empty())
        return;
    auto cert = cloudproto::tls::peer_certificate(connection_->native_tls());
    peer_ = cloudnode::identify_peer(ctx_.config.federation, cert);
    if (peer_)
        log::info(id_, "session", "peer", "name={}", peer_->name);
    else if (cert.present)
        log::info(id_, "session", "stranger", "certificate={}",
                  log::value(cert.names.empty() ? "" : cert.names.front(), 64));
}

// Peers only. A stranger's payload is not read: the session ends.
bool Session::check_peer(const Command& cmd, bool has_payload) {
    if (peer_)
        return true;
    log::info(id_, "session", "refused", "reason=not-a-peer verb={}", cmd.verb);
    auto text = fmt::format("{} is for authenticated peers", cmd.verb);
    if (has_payload)
        reply_and_close(code::peer_required, text, "not-a-peer", true);
    else
        reply(code::peer_required, text);
    return false;
}

// HOPS and TRACE of a RELAY; replies and returns false at the first
// fault.
bool Session::check_route(const Command& cmd, cloudproto::RelayRoute& route) {
    const auto& cfg = ctx_.config;
    bool have_hops = false;
    bool have_trace = false;
    for (std::size_t i = 3; i < cmd.args.size(); ++i) {
        const auto& param = cmd.args[i];
        auto eq = param.find('=');
        auto key = param.substr(0, eq);
        for (auto& c : key)
            c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
        auto value = std::string_view(param).substr(eq + 1);
        bool again =
            (key == "HOPS" && have_hops) || (key == "TRACE" && have_trace);
        if (again) {
            reply(code::parameter_error, key + " given twice");
            return false;
        }
        if (key == "HOPS") {
            auto hops = cloudproto::parse_count(value, max_count_digits);
            if (!hops || *hops < 1) {
                reply(code::parameter_error, "HOPS must be a count from 1");
                return false;
            }
            route.hops = *hops;
            have_hops = true;
        } else if (key == "TRACE") {
            auto trace = cloudproto::parse_trace(value);
            if (!trace) {
                reply(code::parameter_error,
                      "TRACE must be node names separated by commas");
                return false;
            }
            route.trace = std::move(*trace);
            have_trace = true;
        } else {
            reply(code::parameter_not_recognised,
                  "parameter " + key + " not recognised");
            return false;
        }
    }
    if (!have_hops || !have_trace || route.trace.size() != route.hops) {
        reply(code::parameter_error,
              "RELAY needs HOPS=<n> and TRACE with n node names");
        return false;
    }
    if (!cloudproto::same_node_name(route.trace.back(), peer_->name)) {
        reply(code::parameter_error,
              fmt::format("TRACE must end with the sender, {}", peer_->name));
        return false;
    }
    // The result goes back to the peer as this node knows it.
    route.trace.back() = peer_->name;
    const std::string& id = cmd.args[0];
    if (route.crossed(cfg.name)) {
        log::info(id, "job", "refused", "session={} reason=loop trace={}", id_,
                  route.trace_text());
        reply(code::would_loop,
              fmt::format("{} would loop: the trace already holds {}", id,
                          cfg.name));
        return false;
    }
    if (route.hops > cfg.federation.hop_limit) {
        log::info(id, "job", "refused", "session={} reason=hop-limit hops={}",
                  id_, route.hops);
        reply(code::would_loop, fmt::format("{} exceeds the hop limit of {}",
                                            id, cfg.federation.hop_limit));
        return false;
    }
    return true;
}

// A job whose runtime runs only beyond its route: past the hop limit, or
// at nodes its trace holds already. The reply names that reason.
void Session::refuse_route(const Job& job,
                           const Router::Offered& offered) {
    const auto& runtime = job.descriptor.runtime;
    if (offered.offer == Router::Offer::hop_limit) {
        reply(code::would_loop,
              fmt::format("{} would pass the hop limit of {} to reach "
                          "runtime {}",
                          job.id(), offered.hop_limit, runtime));
        return;
    }
    reply(code::would_loop,
          fmt::format("{} would loop: runtime {} runs only at {}, in its "
                      "trace",
                      job.id(), runtime, fmt::join(offered.in_trace, ",")));
}

// A RELAY of a job this node holds, with the same octets, from another
// peer (a job handed in at two origins) or again from the same one: the
// sender is owed the result too, recorded before "already accepted".
asio::awaitable<void> Session::owe_result_too(const std::string& id) {
    const Job* known = ctx_.jobs.find(id);
    if (known && cloudproto::same_node_name(known->relay_peer, peer_->name)) {
        // It is on its way to that very peer: each would wait for the
        // other's result.
        log::info(id, "job", "refused", "session={} reason=loop from={}", id_,
                  peer_->name);
        reply(code::would_loop,
              fmt::format("{} would loop: {} relayed it to {}", id,
                          ctx_.config.name, peer_->name));
        co_return;
    }
    std::string error;
    co_await until_called([&](auto called) {
        ctx_.router.owe_also(id, peer_->name,
                             [&error, called](const std::string& e) {
                                 error = e;
                                 called();
                             });
    });
    if (!error.empty()) {
        log::error(id, "job", "refused", "session={} reason=spool error={}",
                   id_, log::value(error));
        reply(code::local_error, id + " not stored: the spool failed");
        co_return;
    }
    log::info(id, "job", "duplicate", "session={} from={}", id_, peer_->name);
    reply(code::ok, id + " already accepted");
}

// Reads `n` payload octets and keeps the first `keep` of them in `kept`;
// false when the session ends instead.
asio::awaitable<bool> Session::read_kept(std::uint64_t n, std::uint64_t keep,
                                         std::string& kept) {
    constexpr std::uint64_t chunk_bytes = 64 * 1024;
    while (n > 0) {
        auto want = std::min(n, chunk_bytes);
        auto chunk = co_await read_payload(want);
        if (!chunk)
            co_return false;
        if (kept.size() < keep)
            kept.append(*chunk, 0, keep - kept.size());
        n -= want;
    }
    co_return true;
}

asio::awaitable<void> Session::proceed_capacity(const Command& cmd) {
    if (!check_peer(cmd, false))
        co_return;
    std::vector<std::string> lines{ctx_.config.name + " capacity"};
    for (const auto& c : ctx_.router.capacity())
        lines.push_back(cloudproto::format_capacity(c));
    reply(code::ok, lines);
}

asio::awaitable<void> Session::proceed_relay(const Command& cmd) {
    if (!check_peer(cmd, true))
        co_return;
    co_await receive_job(cmd);
}

asio::awaitable<void> Session::proceed_return(const Command& cmd) {
    const auto& cfg = ctx_.config;
    if (!check_peer(cmd, true))
        co_return;
    const std::string& id = cmd.args[0];

    // The sizes, then the payload, as for SUBMIT.
    auto report_bytes = parse_size(cmd.args[1]);
    auto out_bytes = parse_size(cmd.args[2]);
    auto err_bytes = parse_size(cmd.args[3]);
    if (!report_bytes || !out_bytes || !err_bytes) {
        reply_and_close(code::parameter_error,
                        "octet counts must be decimal numbers of at most 18 "
                        "digits",
                        "bad-return", true);
        co_return;
    }
    if (*report_bytes > max_report_bytes) {
        reply_and_close(
            code::parameter_error,
            fmt::format("a report is at most {} octets", max_report_bytes),
            "bad-return", true);
        co_return;
    }

    // The payload: of each stream, what this node keeps of output.
    // (co_await stays out of conditions: g++ 12 miscompiles some.)
    auto report_text = co_await read_payload(*report_bytes);
    std::string out, err;
    bool whole = report_text.has_value();
    if (whole)
        whole = co_await read_kept(*out_bytes, cfg.max_output_bytes, out);
    if (whole)
        whole = co_await read_kept(*err_bytes, cfg.max_output_bytes, err);
    if (!whole)
        co_return;
    if (state_ != State::ready) {
        reply(code::bad_sequence, "say HELLO first");
        co_return;
    }
    if (!cloudproto::is_valid_job_id(id)) {
        reply(code::parameter_error, bad_job_id);
        co_return;
    }

    // The report: a final one, of this job.
    auto report = parse_report(*report_text);
    if (!report || report->job_id != id ||
        !cloudproto::is_final(report->state)) {
        reply(code::descriptor_rejected,
              "report rejected: it must be KEY value lines of job " + id +
                  " in a final state");
        co_return;
    }

    switch (ctx_.router.check_return(peer_->name, id)) {
    case Router::ReturnCheck::not_relayed_there:
        log::info(id, "job", "return-refused", "session={} from={}", id_,
                  peer_->name);
        reply(code::no_such_job,
              fmt::format("no job {} was relayed to {}", id, peer_->name));
        co_return;
    case Router::ReturnCheck::already_stored:
        reply(code::ok, id + " result already stored");
        co_return;
    case Router::ReturnCheck::being_stored:
        reply(code::local_error,
              id + " result not stored: another copy is being stored; "
                   "try again");
        co_return;
    case Router::ReturnCheck::expected:
        break;
    }

    report->stdout_truncated |= out.size() < *out_bytes;
    report->stderr_truncated |= err.size() < *err_bytes;
    std::string error;
    co_await until_called([&](auto called) {
        ctx_.router.store_returned(peer_->name, std::move(*report),
                                   std::move(out), std::move(err),
                                   [&error, called](const std::string& e) {
                                       error = e;
                                       called();
                                   });
    });
    if (!error.empty()) {
        log::error(id, "job", "return-refused",
                   "session={} reason=spool error={}", id_, log::value(error));
        reply(code::local_error, id + " not stored: the spool failed");
        co_return;
    }
    reply(code::ok, id + " result stored");
}

} // namespace cloudnode
