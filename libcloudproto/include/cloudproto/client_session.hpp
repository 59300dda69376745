// The customer's side of a session (proto-spec sections "Session" to
// "RESULT"): connect, HELLO, then one method per verb. Each method gives
// the reply, or nullopt when the connection failed (error() says how).
#pragma once

#include "cloudproto/connection.hpp"
#include "cloudproto/job_report.hpp"
#include "cloudproto/reply.hpp"

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

// What a node announced in its HELLO reply.
struct Capabilities {
    int version = 0;
    std::vector<std::string> runtimes;
    std::uint64_t max_job_bytes = 0;
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

    // Resolves, connects, shakes hands and reads the greeting.
    asio::awaitable<std::optional<Reply>> connect(const std::string& host,
                                                  const std::string& port);
    asio::awaitable<std::optional<Reply>> hello(const std::string& name);
    asio::awaitable<std::optional<Reply>> submit(const std::string& job_id,
                                                 const std::string& descriptor,
                                                 const std::string& script);
    asio::awaitable<std::optional<Reply>> status(const std::string& job_id);

    // Calls `progress` for each state the node reports while it waits.
    asio::awaitable<std::optional<Reply>>
    wait(const std::string& job_id, std::chrono::seconds limit,
         const std::function<void(JobState)>& progress);

    // On a 250, `result` holds the report and the captured output.
    asio::awaitable<std::optional<Reply>> result(const std::string& job_id,
                                                 JobResult& result);
    asio::awaitable<std::optional<Reply>> quit();

    const Capabilities& capabilities() const { return capabilities_; }
    const std::string& error() const { return error_; }

private:
    using LineCallback = std::function<void(const std::string&)>;

    asio::awaitable<std::optional<Reply>>
    command(const std::string& line, const LineCallback& on_line = {});
    asio::awaitable<std::optional<Reply>>
    read_reply(const LineCallback& on_line = {});
    std::nullopt_t fail(std::string what);

    asio::any_io_executor executor_;
    asio::ssl::context* tls_;
    duration timeout_;
    std::shared_ptr<Connection> connection_;
    Capabilities capabilities_;
    std::string error_;
};

// A job report from the KEY value lines of a reply.
std::optional<JobReport> report_from_reply(const Reply& reply);

} // namespace cloudproto
