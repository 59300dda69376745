#include "cloudproto/client_session.hpp"

#include "cloudproto/protocol.hpp"
#include "cloudproto/text.hpp"

#include <asio/connect.hpp>
#include <asio/redirect_error.hpp>
#include <asio/ssl/error.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>

namespace cloudproto {

namespace {

// A RESULT payload is read this much at a time, so that what the tool
// holds grows with what arrives, not with what was announced.
constexpr std::uint64_t result_chunk_bytes = 64 * 1024;

// Which failures of a connection may pass on a new one. Before the node
// has replied, only the network's own: refused, reset, unreachable,
// timed out. Anything else then (a TLS alert, a certificate that does
// not verify, a node that hangs up at once) would happen again. Once the
// node has replied, a connection that ends or stalls was lost.
bool is_transient(std::error_code ec, bool node_replied) {
    static const std::error_code network_failures[] = {
        asio::error::connection_refused,  asio::error::connection_reset,
        asio::error::connection_aborted,  asio::error::timed_out,
        asio::error::network_unreachable, asio::error::host_unreachable,
        asio::error::network_down,        asio::error::host_not_found_try_again,
    };
    if (node_replied)
        return ec != asio::error::operation_aborted;
    return std::find(std::begin(network_failures), std::end(network_failures),
                     ec) != std::end(network_failures);
}

} // namespace

Capabilities Capabilities::from_reply(const Reply& hello) {
    Capabilities caps;
    // The first line greets; every later line is "KEYWORD [params]".
    for (std::size_t i = 1; i < hello.lines.size(); ++i) {
        auto words = split_words(hello.lines[i]);
        if (words.empty())
            continue;
        // Keywords compare without regard to case (spec 7.4).
        for (auto& c : words[0])
            c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
        std::string params;
        auto space = hello.lines[i].find(' ');
        if (space != std::string::npos)
            params = hello.lines[i].substr(space + 1);
        caps.keywords[words[0]] = params;
        if (words[0] == "VERSION" && words.size() > 1)
            caps.version = static_cast<int>(
                parse_decimal<std::uint64_t>(words[1]).value_or(0));
        else if (words[0] == "RUNTIMES")
            caps.runtimes.assign(words.begin() + 1, words.end());
        else if (words[0] == "MAX-JOB-BYTES" && words.size() > 1)
            caps.max_job_bytes =
                parse_decimal<std::uint64_t>(words[1]).value_or(0);
        else if (words[0] == "MAX-OUTPUT-BYTES" && words.size() > 1)
            caps.max_output_bytes =
                parse_decimal<std::uint64_t>(words[1]).value_or(0);
    }
    return caps;
}

std::optional<JobReport> report_from_reply(const Reply& reply) {
    std::vector<Field> fields;
    for (const auto& line : reply.lines) {
        if (auto f = parse_field(line))
            fields.push_back(std::move(*f));
    }
    return JobReport::from_fields(fields);
}

ClientSession::ClientSession(asio::any_io_executor executor,
                             asio::ssl::context* tls, duration timeout)
    : executor_(std::move(executor)), tls_(tls), timeout_(timeout) {}

ClientSession::~ClientSession() {
    close();
}

void ClientSession::close() {
    if (connection_)
        connection_->close();
}

// A failure that a new connection would meet again.
std::nullopt_t ClientSession::fail(std::string what) {
    error_ = std::move(what);
    transient_ = false;
    if (connection_)
        connection_->close();
    return std::nullopt;
}

// A failure of the connection itself; `ec` says whether it may pass.
std::nullopt_t ClientSession::fail(std::string what, std::error_code ec) {
    fail(std::move(what));
    transient_ = is_transient(ec, node_replied_);
    return std::nullopt;
}

asio::awaitable<std::optional<Reply>>
ClientSession::connect(const std::string& host, const std::string& port,
                       bool check_host) {
    using tcp = asio::ip::tcp;
    std::error_code ec;
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    node_replied_ = false;

    // Resolve and connect.
    tcp::resolver resolver(executor_);
    auto endpoints = co_await resolver.async_resolve(host, port, token);
    if (ec)
        co_return fail(fmt::format("cannot resolve {}: {}", host, ec.message()),
                       ec);
    tcp::socket socket(executor_);
    co_await asio::async_connect(socket, endpoints, token);
    if (ec)
        co_return fail(fmt::format("cannot connect to {}:{}: {}", host, port,
                                   ec.message()),
                       ec);

    // Commands are small and each waits for its reply: send at once.
    socket.set_option(tcp::no_delay(true), ec);

    // TLS, then the greeting.
    if (tls_)
        connection_ = std::make_shared<Connection>(std::move(socket), *tls_,
                                                   max_line_bytes);
    else
        connection_ =
            std::make_shared<Connection>(std::move(socket), max_line_bytes);
    connection_->arm(timeout_);
    auto hs = co_await connection_->client_handshake(host, check_host);
    if (hs) {
        // A node past its connection limits may close without a
        // handshake, which stands for a 421 (spec 7.2).
        bool cut = hs == asio::error::eof ||
                   hs == asio::error::connection_reset ||
                   hs == asio::ssl::error::stream_truncated;
        co_return fail(fmt::format("TLS handshake with {}:{} failed: {}{}",
                                   host, port, hs.message(),
                                   cut ? " (the node may have too many "
                                         "connections; try again later)"
                                       : ""),
                       hs);
    }
    auto greeting = co_await read_reply();
    node_replied_ = greeting.has_value();
    co_return greeting;
}

asio::awaitable<std::optional<Reply>>
ClientSession::hello(const std::string& name) {
    auto reply = co_await command("HELLO " + name);
    if (reply && reply->code == reply_code::ok)
        capabilities_ = Capabilities::from_reply(*reply);
    co_return reply;
}

asio::awaitable<std::optional<Reply>>
ClientSession::submit(const std::string& job_id, const std::string& descriptor,
                      const std::string& script) {
    // The payload follows the command line at once (no interim reply).
    connection_->queue(fmt::format("SUBMIT {} {} {}\r\n", job_id,
                                   descriptor.size(), script.size()));
    connection_->queue(descriptor);
    connection_->queue(script);
    co_return co_await command({});
}

asio::awaitable<std::optional<Reply>>
ClientSession::status(const std::string& job_id) {
    co_return co_await command("STATUS " + job_id);
}

asio::awaitable<std::optional<Reply>>
ClientSession::wait(const std::string& job_id, std::chrono::seconds limit,
                    const std::function<void(JobState)>& progress) {
    // The node answers within `limit`; allow it the usual slack on top.
    connection_->arm(limit + timeout_);
    auto on_line = [&](const std::string& line) {
        auto field = parse_field(line);
        if (!field || field->first != "STATE")
            return;
        if (auto state = job_state_from_string(field->second))
            progress(*state);
    };
    auto line = fmt::format("WAIT {} {}", job_id, limit.count());
    connection_->queue(line + "\r\n");
    auto reply = co_await read_reply(on_line);
    co_return reply;
}

asio::awaitable<std::optional<Reply>>
ClientSession::result(const std::string& job_id, JobResult& result) {
    auto reply = co_await command("RESULT " + job_id);
    if (!reply || reply->code != reply_code::ok)
        co_return reply;

    // The final line announces the payload: PAYLOAD <out> <err>.
    auto words = split_words(reply->last_line());
    std::optional<std::uint64_t> out_bytes, err_bytes;
    if (words.size() == 3 && words[0] == "PAYLOAD") {
        out_bytes = parse_decimal<std::uint64_t>(words[1]);
        err_bytes = parse_decimal<std::uint64_t>(words[2]);
    }
    auto report = report_from_reply(*reply);
    if (!out_bytes || !err_bytes || !report)
        co_return fail("the node sent a RESULT reply this tool cannot read");

    // A node keeps at most MAX-OUTPUT-BYTES of each stream: a larger
    // count is refused before it can cost memory.
    auto max = capabilities_.max_output_bytes;
    if (max && (*out_bytes > max || *err_bytes > max))
        co_return fail(fmt::format(
            "the node announced a result of {} + {} bytes, more than its "
            "MAX-OUTPUT-BYTES {} per stream",
            *out_bytes, *err_bytes, max));
    auto cap = max_result_payload_bytes;
    if (!max && (*out_bytes > cap || *err_bytes > cap - *out_bytes))
        co_return fail(fmt::format(
            "the node announced a result of {} + {} bytes, more than the "
            "{} bytes this tool takes from a node that announces no "
            "MAX-OUTPUT-BYTES",
            *out_bytes, *err_bytes, cap));
    result.report = std::move(*report);

    result.out.clear();
    result.err.clear();
    auto ec = co_await read_output(*out_bytes, result.out);
    if (!ec)
        ec = co_await read_output(*err_bytes, result.err);
    if (ec)
        co_return fail(
            "connection lost while reading the result: " + ec.message(), ec);
    co_return reply;
}

// Appends `n` payload octets to `into`, a bounded chunk at a time; the
// node has the usual time for each chunk.
asio::awaitable<std::error_code> ClientSession::read_output(std::uint64_t n,
                                                            std::string& into) {
    std::string chunk;
    while (n > 0) {
        auto want = std::min(n, result_chunk_bytes);
        connection_->arm(timeout_);
        auto ec = co_await connection_->read_payload(
            static_cast<std::size_t>(want), chunk);
        if (ec)
            co_return ec;
        into += chunk;
        n -= want;
    }
    co_return std::error_code{};
}

tls::PeerCertificate ClientSession::peer_certificate() {
    return tls::peer_certificate(connection_ ? connection_->native_tls()
                                             : nullptr);
}

asio::awaitable<std::optional<Reply>> ClientSession::capacity() {
    co_return co_await command("CAPACITY");
}

asio::awaitable<std::optional<Reply>>
ClientSession::relay(const std::string& job_id, const std::string& descriptor,
                     const std::string& script, const RelayRoute& route) {
    if (!connection_)
        co_return fail("not connected");
    connection_->queue(fmt::format("RELAY {} {} {} {}\r\n", job_id,
                                   descriptor.size(), script.size(),
                                   route.parameters()));
    connection_->queue(descriptor);
    connection_->queue(script);
    sent_whole_ = false;
    connection_->arm(timeout_);
    auto flushed = co_await connection_->flush();
    if (flushed)
        co_return fail("connection lost: " + flushed.message(), flushed);
    sent_whole_ = true;
    co_return co_await command({});
}

asio::awaitable<std::optional<Reply>>
ClientSession::give_back(const std::string& job_id, const JobReport& report,
                         const std::string& out, const std::string& err) {
    std::string lines;
    for (const auto& f : report.to_fields())
        lines += format_field(f) + "\r\n";
    if (!connection_)
        co_return fail("not connected");
    connection_->queue(fmt::format("RETURN {} {} {} {}\r\n", job_id,
                                   lines.size(), out.size(), err.size()));
    connection_->queue(lines);
    connection_->queue(out);
    connection_->queue(err);
    co_return co_await command({});
}

asio::awaitable<std::optional<Reply>> ClientSession::quit() {
    auto reply = co_await command("QUIT");
    if (connection_)
        co_await connection_->shutdown(timeout_);
    co_return reply;
}

asio::awaitable<std::optional<Reply>>
ClientSession::command(const std::string& line, const LineCallback& on_line) {
    if (!connection_)
        co_return fail("not connected");
    if (!line.empty())
        connection_->queue(line + "\r\n");
    connection_->arm(timeout_);
    co_return co_await read_reply(on_line);
}

asio::awaitable<std::optional<Reply>>
ClientSession::read_reply(const LineCallback& on_line) {
    ReplyParser parser;
    for (;;) {
        auto line = co_await connection_->read_line();
        if (line.ec == asio::error::timed_out)
            co_return fail("the node did not answer in time", line.ec);
        if (line.ec)
            co_return fail("connection lost: " + line.ec.message(), line.ec);
        if (line.kind == LineEvent::Kind::too_long)
            co_return fail("the node sent a line longer than the protocol "
                           "allows");

        auto status = parser.feed_line(line.text);
        if (status == ReplyParser::Status::error)
            co_return fail("the node sent a malformed reply: " +
                           parser.error());
        if (on_line) {
            // The text after "NNN-" or "NNN ".
            on_line(line.text.size() > 4 ? line.text.substr(4) : "");
        }
        if (status == ReplyParser::Status::complete)
            co_return parser.take();
    }
}

} // namespace cloudproto
