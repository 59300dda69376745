// Delivers result mails through the operator's mail server (proto-spec
// "Result mail"): each mail waits in the spool's mail queue until a
// server accepts it, tried again with growing delays after a 4xx or a
// server that cannot be reached, until its lifetime runs out.
//
//   <spool>/mail/queue/<id>.eml    written with the job's result
//   <spool>/mail/failed/<id>.eml   given up (5xx, or lifetime over),
//   <spool>/mail/failed/<id>.why   with the reason on one line
#pragma once

#include "node/config.hpp"
#include "node/job_table.hpp"

#include "cloudproto/smtp_client.hpp"

#include <asio/io_context.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace cloudnode {

class Mailer {
public:
    Mailer(asio::io_context& io, const Config& config, JobTable& jobs);

    // Where the spool writes result mails for this mailer.
    static std::filesystem::path queue_dir(const Config& config);

    // Takes up what the queue holds (after a restart) and what failed
    // before, and marks the jobs' reports. Call once, after the jobs are
    // known.
    void start();
    void stop();

    // The mail of job `id` is in the queue now.
    void post(const std::string& id);

private:
    struct Mail {
        std::string id;
        std::string to;
        std::chrono::system_clock::time_point queued;
        std::chrono::seconds next_delay;
        std::unique_ptr<asio::steady_timer> timer;
        bool last_try = false; // at the lifetime's end
    };

    void schedule(const std::string& id);
    void deliver_next();
    asio::awaitable<void> deliver(std::string id);
    void finished(const std::string& id, const cloudproto::smtp::Outcome& o);
    void retry(Mail& mail, const std::string& why);
    // `id` by value: it may be the id of the mail it erases.
    void give_up(std::string id, const std::string& why,
                 std::string_view result);
    void mark(const std::string& id, std::string state, std::string error);

    asio::io_context& io_;
    const Config& config_;
    const MailServer& server_;
    JobTable& jobs_;
    std::optional<asio::ssl::context> tls_;
    cloudproto::smtp::Settings settings_;
    std::filesystem::path queue_;
    std::filesystem::path failed_;

    std::map<std::string, Mail> mails_;
    std::deque<std::string> ready_;
    std::size_t sending_ = 0;
    bool stopped_ = false;
};

} // namespace cloudnode
