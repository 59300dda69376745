#include "node/mailer.hpp"

#include "cloudproto/log.hpp"
#include "cloudproto/tls.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/host_name.hpp>
#include <asio/ip/tcp.hpp>
#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace cloudnode {

namespace fs = std::filesystem;
namespace log = cloudproto::log;
namespace smtp = cloudproto::smtp;
using SystemClock = std::chrono::system_clock;

namespace {

// Mails sent at once: enough to keep a server busy, few enough not to
// look like a flood.
constexpr std::size_t max_parallel_deliveries = 4;

std::optional<std::string> read_whole(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// The recipient, from the To field the node itself wrote.
std::string recipient(std::string_view message) {
    std::size_t at = 0;
    while (at < message.size()) {
        auto end = message.find("\r\n", at);
        auto line = message.substr(at, end - at);
        if (line.empty() || end == std::string_view::npos)
            break;
        if (line.starts_with("To: "))
            return std::string(line.substr(4));
        at = end + 2;
    }
    return {};
}

// EHLO's argument when the operator names none: the machine's domain
// name when it has one, else empty, for the address literal of each
// connection's local end (RFC 5321 4.1.3). A bare host name or
// "localhost..." would mean nothing to the server.
std::string machine_domain(asio::io_context& io) {
    std::error_code ec;
    std::string name = asio::ip::host_name(ec);
    if (!ec && name.find('.') == std::string::npos) {
        asio::ip::tcp::resolver resolver(io);
        auto found = resolver.resolve(
            name, "", asio::ip::resolver_base::canonical_name, ec);
        if (!ec && !found.empty())
            name = found.begin()->host_name();
    }
    bool usable = !ec && name.find('.') != std::string::npos &&
                  !name.starts_with("localhost") && is_helo_name(name);
    return usable ? name : std::string();
}

smtp::Security security_of(const std::string& name) {
    if (name == "tls")
        return smtp::Security::tls;
    if (name == "none")
        return smtp::Security::none;
    return smtp::Security::starttls;
}

} // namespace

fs::path Mailer::queue_dir(const Config& config) {
    return config.spool_dir / "mail" / "queue";
}

Mailer::Mailer(asio::io_context& io, const Config& config, JobTable& jobs)
    : io_(io), config_(config), server_(*config.mail_server), jobs_(jobs),
      queue_(queue_dir(config)), failed_(config.spool_dir / "mail" / "failed") {
    fs::create_directories(queue_);
    fs::create_directories(failed_);
    if (server_.security != "none") {
        std::optional<fs::path> authority;
        if (!server_.authority.empty())
            authority = server_.authority;
        tls_.emplace(cloudproto::tls::make_client_context(authority));
    }
    settings_.host = server_.host;
    settings_.port = server_.port;
    settings_.security = security_of(server_.security);
    settings_.tls = tls_ ? &*tls_ : nullptr;
    settings_.server_name = server_.server_name;
    settings_.helo_name =
        server_.helo_name.empty() ? machine_domain(io_) : server_.helo_name;
    settings_.username = server_.username;
    settings_.password = server_.password;
    settings_.allow_plaintext_auth = server_.allow_plaintext_auth;
    settings_.timeout = server_.timeout;
    settings_.data_timeout = server_.data_timeout;
}

void Mailer::start() {
    // Given up before: the reason is beside the mail.
    for (auto& e : fs::directory_iterator(failed_)) {
        if (e.path().extension() != ".eml")
            continue;
        auto why = e.path();
        auto reason = read_whole(why.replace_extension(".why")).value_or("");
        while (!reason.empty() && reason.back() == '\n')
            reason.pop_back();
        mark(e.path().stem().string(), "failed", reason);
    }

    // Still owed: queued since the file was written.
    std::size_t owed = 0;
    for (auto& e : fs::directory_iterator(queue_)) {
        if (e.path().extension() != ".eml")
            continue;
        auto id = e.path().stem().string();
        auto written = std::chrono::file_clock::to_sys(e.last_write_time());
        Mail mail{id,
                  {},
                  std::chrono::time_point_cast<SystemClock::duration>(written),
                  server_.first_retry,
                  nullptr};
        mails_.emplace(id, std::move(mail));
        mark(id, "queued", {});
        schedule(id);
        ++owed;
    }

    // A job whose mail left the queue without failing was sent.
    jobs_.for_each([this](Job& job) {
        if (job.report.mail == "queued" && !mails_.count(job.id()))
            job.report.mail = "sent";
    });
    log::info("-", "mail", "started",
              "server={}:{} security={} helo={} queued={}", server_.host,
              server_.port, server_.security,
              settings_.helo_name.empty() ? "address-literal"
                                          : settings_.helo_name,
              owed);
}

void Mailer::stop() {
    stopped_ = true;
    for (auto& [id, mail] : mails_) {
        if (mail.timer)
            mail.timer->cancel();
    }
}

void Mailer::post(const std::string& id) {
    if (mails_.count(id))
        return;
    Mail mail{id, {}, SystemClock::now(), server_.first_retry, nullptr};
    mails_.emplace(id, std::move(mail));
    mark(id, "queued", {});
    schedule(id);
}

void Mailer::schedule(const std::string& id) {
    ready_.push_back(id);
    deliver_next();
}

void Mailer::deliver_next() {
    while (!stopped_ && sending_ < max_parallel_deliveries && !ready_.empty()) {
        auto id = std::move(ready_.front());
        ready_.pop_front();
        ++sending_;
        asio::co_spawn(io_, deliver(id), [this, id](std::exception_ptr e) {
            if (!e)
                return;
            --sending_;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                log::error(id, "mail", "crashed", "error={}",
                           log::value(ex.what()));
            }
        });
    }
}

asio::awaitable<void> Mailer::deliver(std::string id) {
    // The node wrote it moments ago: it is in the page cache.
    auto message = read_whole(queue_ / (id + ".eml"));
    if (!message) {
        --sending_;
        log::error(id, "mail", "failed", "result=permfail error={}",
                   log::value("the queued mail cannot be read"));
        mails_.erase(id);
        mark(id, "failed", "the queued mail cannot be read");
        deliver_next();
        co_return;
    }
    smtp::Envelope envelope{config_.mail_from, recipient(*message)};
    auto outcome = co_await smtp::send_mail(io_.get_executor(), settings_,
                                            envelope, *message);
    --sending_;
    finished(id, outcome);
    deliver_next();
}

void Mailer::finished(const std::string& id, const smtp::Outcome& o) {
    auto it = mails_.find(id);
    if (it == mails_.end() || stopped_)
        return;
    switch (o.kind) {
    case smtp::Outcome::Kind::delivered: {
        std::error_code ec;
        fs::remove(queue_ / (id + ".eml"), ec);
        mails_.erase(it);
        mark(id, "sent", {});
        log::info(id, "mail", "delivered", "result=ok server={}:{} reply={}",
                  server_.host, server_.port, log::value(o.detail));
        return;
    }
    case smtp::Outcome::Kind::permfail:
        give_up(id, fmt::format("{}: {}", o.step, o.detail), "permfail");
        return;
    case smtp::Outcome::Kind::tempfail:
        retry(it->second, fmt::format("{}: {}", o.step, o.detail));
        return;
    }
}

// Growing delays, the last one cut short so that the last try comes
// when the mail's lifetime ends; the mail is given up when that try
// fails too.
void Mailer::retry(Mail& mail, const std::string& why) {
    auto left = mail.queued + server_.lifetime - SystemClock::now();
    if (mail.last_try || left <= SystemClock::duration::zero()) {
        give_up(mail.id, "lifetime over; last attempt: " + why, "expired");
        return;
    }
    std::chrono::milliseconds delay = mail.next_delay;
    if (left <= delay) {
        delay = std::chrono::ceil<std::chrono::milliseconds>(left);
        mail.last_try = true;
    }
    mail.next_delay = std::min(2 * mail.next_delay, server_.max_retry);
    log::info(mail.id, "mail", "deferred",
              "result=tempfail retry_s={} last_try={} error={}",
              std::chrono::ceil<std::chrono::seconds>(delay).count(),
              mail.last_try ? "yes" : "no", log::value(why));
    mail.timer = std::make_unique<asio::steady_timer>(io_, delay);
    mail.timer->async_wait([this, id = mail.id](std::error_code ec) {
        if (!ec && !stopped_)
            schedule(id);
    });
}

void Mailer::give_up(std::string id, const std::string& why,
                     std::string_view result) {
    std::error_code ec;
    fs::rename(queue_ / (id + ".eml"), failed_ / (id + ".eml"), ec);
    std::ofstream(failed_ / (id + ".why")) << why << '\n';
    mails_.erase(id);
    mark(id, "failed", why);
    log::warn(id, "mail", "failed", "result={} error={}", result,
              log::value(why));
}

void Mailer::mark(const std::string& id, std::string state, std::string error) {
    if (Job* job = jobs_.find(id)) {
        job->report.mail = std::move(state);
        job->report.mail_error = std::move(error);
    }
}

} // namespace cloudnode
