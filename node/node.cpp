#include "node/node.hpp"
#include "node/platform/private_files.hpp"

#include "cloudproto/log.hpp"
#include "cloudproto/tls.hpp"

#include <asio/steady_timer.hpp>
#include <fmt/format.h>

#include <csignal>
#include <filesystem>

namespace cloudnode {

namespace log = cloudproto::log;
namespace fs = std::filesystem;

namespace {

// How long a stopping node waits for its jobs' processes to be gone.
constexpr std::chrono::seconds shutdown_grace{5};

std::optional<asio::ssl::context> make_tls(const Config& c) {
    if (c.listen_tls.empty())
        return std::nullopt;
    auto ctx =
        cloudproto::tls::make_server_context(c.certificate, c.private_key);
    if (!c.federation.peers.empty())
        cloudproto::tls::ask_for_peer_certificates(ctx, c.federation.authority);
    return ctx;
}

// Result mails go to the outbox, or to the queue a mailer drains.
std::filesystem::path mail_dir(const Config& c) {
    return c.mail_server ? Mailer::queue_dir(c) : c.outbox_dir;
}

// The node's folders, private to it; jobs' folders are reached through
// the work folder, which others may cross but not list.
const Config& prepared(const Config& c) {
    log::Level level;
    if (log::parse_level(c.log_level, level))
        log::set_level(level);
    for (const auto& folder : {c.spool_dir, c.outbox_dir, c.work_dir})
        platform::make_private_folder(folder);
    platform::let_jobs_cross(c.work_dir);
    return c;
}

// What a job must never see: the node's own folders and secrets.
std::vector<fs::path> node_files(const Config& c) {
    std::vector<fs::path> files{c.file, c.spool_dir, c.work_dir, c.outbox_dir};
    for (const auto& f : {c.certificate, c.private_key, c.federation.authority})
        if (!f.empty())
            files.push_back(f);
    if (c.mail_server) {
        for (const auto& f :
             {c.mail_server->authority, c.mail_server->password_file})
            if (!f.empty())
                files.push_back(f);
    }
    return files;
}

// A secret that other users may read is one a job may read too, below
// the namespaces layer.
void warn_if_readable(const fs::path& secret, std::string_view key) {
    if (platform::readable_by_others(secret))
        log::warn("-", "containment", "secret-readable", "key={} file={}", key,
                  log::value(secret.string()));
}

// Probes the layers, logs what it got, and holds the operator's minimum.
std::unique_ptr<platform::Containment> contain(const Config& c) {
    platform::ContainmentSettings s;
    s.disabled = c.containment.disabled;
    s.hidden = node_files(prepared(c));
    s.work_root = c.work_dir;
    s.slots = c.slots;
    s.first_uid = c.containment.first_uid;
    warn_if_readable(c.file, "configuration");
    if (!c.private_key.empty())
        warn_if_readable(c.private_key, "tls.private_key");
    if (c.mail_server && !c.mail_server->password_file.empty())
        warn_if_readable(c.mail_server->password_file, "mail.password_file");
    std::unique_ptr<platform::Containment> containment;
    try {
        containment = platform::Containment::probe(s);
    } catch (const platform::SettingsError& e) {
        throw ConfigError(fmt::format("{}: {}", c.file.string(), e.what()));
    }
    for (const auto& m : containment->missing())
        log::info("-", "containment", "layer-missing", "layer={} why={}",
                  to_string(m.layer), log::value(m.why));
    log::info("-", "containment", "ready", "level={} layers={}",
              containment->level(), log::value(containment->describe()));
    if (containment->level() < c.containment.require_level)
        throw std::runtime_error(fmt::format(
            "containment level {} is below the required {} "
            "(containment.require_level); see the layer-missing lines",
            containment->level(), c.containment.require_level));
    return containment;
}

} // namespace

Node::Node(Config config)
    : config_(std::move(config)), tls_(make_tls(config_)),
      containment_(contain(config_)),
      spool_(io_, config_.spool_dir, mail_dir(config_)),
      executor_(io_, config_.work_dir, *containment_),
      scheduler_(io_, config_, jobs_, spool_, executor_,
                 containment_->describe()),
      router_(io_, config_, jobs_, spool_, scheduler_),
      session_context_{config_, *containment_, jobs_,
                       spool_,  scheduler_,    router_},
      server_(io_, session_context_, tls_ ? &*tls_ : nullptr),
      signals_(io_, SIGINT, SIGTERM), shutdown_deadline_(io_) {
    scheduler_.on_slot_free = [this] { router_.place_waiting(); };
    if (config_.mail_server)
        mailer_.emplace(io_, config_, jobs_);
    scheduler_.on_result_stored = [this](Job& job) {
        if (mailer_)
            mailer_->post(job.id());
        router_.give_back(job);
    };
}

void Node::recover() {
    auto found = spool_.recover(config_.result_retention);
    for (const auto& problem : found.problems)
        log::error("-", "spool", "damaged", "file={}", log::value(problem));

    for (auto& job : found.finished)
        jobs_.insert(std::move(job));
    router_.owe_returns(found.owed_returns);

    // Jobs that were accepted and not finished: they run again.
    for (auto& job : found.unfinished) {
        auto parsed = cloudproto::parse_descriptor(job.descriptor_text);
        job.digest = payload_digest(job.descriptor_text, job.script);
        job.report.node = config_.name;
        job.report.trace = job.route.trace_text();
        if (auto* d = std::get_if<cloudproto::Descriptor>(&parsed)) {
            job.descriptor = std::move(*d);
            job.report.runtime = job.descriptor.runtime;
        }
        log::info(job.id(), "job", "recovered", "runtime={} relay_peer={}",
                  log::value(job.report.runtime),
                  job.relay_peer.empty() ? "none" : job.relay_peer);
        Job& stored = jobs_.insert(std::move(job));
        router_.place(stored);
    }
}

int Node::run() {
    recover();
    if (mailer_)
        mailer_->start();
    server_.listen();
    router_.start();

    std::string runtimes;
    for (const auto& rt : config_.runtimes)
        runtimes += (runtimes.empty() ? "" : ",") + rt.name;
    log::info("-", "node", "started", "name={} slots={} runtimes={} spool={}",
              config_.name, config_.slots, runtimes,
              log::value(config_.spool_dir.string()));

    signals_.async_wait([this](std::error_code ec, int signal) {
        if (!ec)
            shut_down(signal);
    });
    io_.run();
    log::info("-", "node", "stopped", "name={}", config_.name);
    return 0;
}

// Stops taking work, kills running jobs (they stay in the spool and run
// again at the next start), and lets the event loop run dry: sessions
// say goodbye, the spool finishes what it writes. A second signal, or
// the grace period, stops everything at once.
void Node::shut_down(int signal) {
    log::info("-", "node", "stopping", "signal={} running={} queued={}", signal,
              scheduler_.running(), scheduler_.queued());
    server_.stop();
    router_.stop();
    if (mailer_)
        mailer_->stop();

    signals_.async_wait([this](std::error_code ec, int) {
        if (!ec)
            io_.stop();
    });
    shutdown_deadline_.expires_after(shutdown_grace);
    shutdown_deadline_.async_wait([this](std::error_code ec) {
        if (ec)
            return;
        log::warn("-", "node", "stopping", "reason=grace-expired");
        io_.stop();
    });
    scheduler_.stop([this] {
        shutdown_deadline_.cancel();
        signals_.cancel();
    });
    executor_.stop_all();
}

} // namespace cloudnode
