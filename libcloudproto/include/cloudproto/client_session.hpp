// The customer's side of a session (proto-spec sections "Session" to
// "RESULT"): connect, HELLO, then one method per verb. Each method gives
// the reply, or nullopt when the connection failed (error() says how,
// failure_is_transient() whether a new connection may do better).
#pragma once

#include "cloudproto/connection.hpp"
#include "cloudproto/federation.hpp"
#include "cloudproto/job_report.hpp"
#include "cloudproto/reply.hpp"
#include "cloudproto/tls.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ssl/context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cloudproto {

// The most a RESULT payload (stdout and stderr together) may announce
// when the node announced no MAX-OUTPUT-BYTES: more is refused unread.
inline constexpr std::uint64_t max_result_payload_bytes = 1ULL << 30;

// What a node announced in its HELLO reply.
struct Capabilities {
    int version = 0;
    std::vector<std::string> runtimes;
    std::uint64_t max_job_bytes = 0;
    std::uint64_t max_output_bytes = 0; // per stream; 0: not announced
    std::map<std::string, std::string> keywords; // every keyword, raw

    static Capabilities from_reply(const Reply& hello);
    bool has(const std::string& keyword) const {
        return keywords.count(keyword) != 0;
    }
};

struct JobResult {
    JobReport report;
    std::string out;
    std::string err;
};

class ClientSession {
public:
    using duration = std::chrono::steady_clock::duration;

    // `tls` null: the plaintext listener.
    ClientSession(asio::any_io_executor executor, asio::ssl::context* tls,
                  duration timeout);
    ~ClientSession();
    ClientSession(const ClientSession&) = delete;
    ClientSession& operator=(const ClientSession&) = delete;

    // Drops the connection at once. Until then it keeps the event loop
    // running (its timeout watchdog does).
    void close();

    // Resolves, connects, shakes hands and reads the greeting. With
    // `check_host` false the certificate is not checked against `host`:
    // the caller judges peer_certificate() itself (links between peers).
    asio::awaitable<std::optional<Reply>> connect(const std::string& host,
                                                  const std::string& port,
                                                  bool check_host = true);
    tls::PeerCertificate peer_certificate();
    asio::awaitable<std::optional<Reply>> hello(const std::string& name);
    asio::awaitable<std::optional<Reply>> submit(const std::string& job_id,
                                                 const std::string& descriptor,
                                                 const std::string& script);
    asio::awaitable<std::optional<Reply>> status(const std::string& job_id);

    // Calls `progress` for each state the node reports while it waits.
    asio::awaitable<std::optional<Reply>>
    wait(const std::string& job_id, std::chrono::seconds limit,
         const std::function<void(JobState)>& progress);

    // On a 250, `result` holds the report and the captured output. A
    // PAYLOAD larger than the node's MAX-OUTPUT-BYTES per stream (or,
    // without it, than max_result_payload_bytes) fails unread.
    asio::awaitable<std::optional<Reply>> result(const std::string& job_id,
                                                 JobResult& result);
    asio::awaitable<std::optional<Reply>> quit();

    // The verbs between peers (proto-spec "Federation").
    asio::awaitable<std::optional<Reply>> capacity();
    asio::awaitable<std::optional<Reply>> relay(const std::string& job_id,
                                                const std::string& descriptor,
                                                const std::string& script,
                                                const RelayRoute& route);
    asio::awaitable<std::optional<Reply>>
    give_back(const std::string& job_id, const JobReport& report,
              const std::string& out, const std::string& err);

    // After a nullopt from relay(): whether the whole command had left
    // before the connection failed (the peer may hold the job).
    bool sent_whole() const { return sent_whole_; }

    const Capabilities& capabilities() const { return capabilities_; }
    const std::string& error() const { return error_; }

    // After a nullopt: whether the connection could not be made or was
    // lost, so that a new one may succeed. A failed TLS handshake or
    // certificate check, or a node that breaks the protocol, would fail
    // the same way again.
    bool failure_is_transient() const { return transient_; }

private:
    using LineCallback = std::function<void(const std::string&)>;

    asio::awaitable<std::optional<Reply>>
    command(const std::string& line, const LineCallback& on_line = {});
    asio::awaitable<std::optional<Reply>>
    read_reply(const LineCallback& on_line = {});
    asio::awaitable<std::error_code> read_output(std::uint64_t n,
                                                 std::string& into);
    std::nullopt_t fail(std::string what);
    std::nullopt_t fail(std::string what, std::error_code ec);

    asio::any_io_executor executor_;
    asio::ssl::context* tls_;
    duration timeout_;
    std::shared_ptr<Connection> connection_;
    Capabilities capabilities_;
    std::string error_;
    bool transient_ = false;
    bool node_replied_ = false; // the greeting came on this connection
    bool sent_whole_ = false;
};

// A job report from the KEY value lines of a reply.
std::optional<JobReport> report_from_reply(const Reply& reply);

} // namespace cloudproto
