// cloud-submit: the customer's tool. Hands a script and its descriptor to
// a node, follows the job, prints its result.
#include "options.hpp"
#include "output.hpp"

#include "cloudproto/client_session.hpp"
#include "cloudproto/job_id.hpp"
#include "cloudproto/protocol.hpp"
#include "cloudproto/tls.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

using namespace cloudsubmit;
using cloudproto::ClientSession;
using cloudproto::JobState;
using cloudproto::Reply;

// Exit statuses of the tool itself, apart from the job's own.
constexpr int exit_tool_error = 255;
constexpr int exit_job_timeout = 124;
constexpr int exit_signal_base = 128;

// A hand-in whose connection could not be made or was lost (or that a
// node turned away for now, 4xx) is tried again under the same job id:
// the node runs the job once however many copies reach it.
constexpr int submit_attempts = 3;
constexpr std::chrono::seconds wait_step{60};

int tool_error(const std::string& message) {
    write_tool_line(message);
    return exit_tool_error;
}

// A SCRIPT or DESCRIPTOR: a regular file, or a pipe (`<(...)`,
// /dev/stdin). Anything else is refused: a directory would read as an
// empty file and be handed in as one.
std::optional<std::string> read_file(const std::string& path,
                                     std::string& error) {
    namespace fs = std::filesystem;
    std::error_code ec;
    auto type = fs::status(path, ec).type();
    if (ec) {
        error = fmt::format("cannot read {}: {}", path, ec.message());
        return std::nullopt;
    }
    if (type != fs::file_type::regular && type != fs::file_type::fifo) {
        error = path + " is not a regular file";
        return std::nullopt;
    }

    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    if (in)
        s << in.rdbuf();
    if (!in || in.bad()) {
        error = "cannot read " + path;
        return std::nullopt;
    }
    return s.str();
}

// A reply, as an error line quotes it.
std::string describe(const Reply& r) {
    return fmt::format("{} {}", r.code, printable(r.last_line()));
}

class Submitter {
public:
    Submitter(asio::io_context& io, const Options& o, asio::ssl::context* tls)
        : io_(io), options_(o), tls_(tls) {}

    // Ends the session, whatever state it was left in.
    void close() {
        if (session_)
            session_->close();
    }

    asio::awaitable<int> run() {
        switch (options_.action) {
        case Action::submit:
            co_return co_await submit();
        case Action::status:
            co_return co_await status();
        case Action::result:
            co_return co_await result();
        default:
            co_return 0;
        }
    }

private:
    void progress(const std::string& text) {
        if (!options_.quiet)
            write_tool_line(text);
    }

    // Why the session gave no reply, fit to print.
    std::string session_error() const { return printable(session_->error()); }

    // Connects and says HELLO; false when it cannot, with error_ saying
    // why and transient_ whether a new connection may do better.
    asio::awaitable<bool> open() {
        session_.emplace(io_.get_executor(), tls_,
                         std::chrono::duration_cast<ClientSession::duration>(
                             options_.timeout));
        auto greeting = co_await session_->connect(options_.host,
                                                   options_.port);
        if (!greeting) {
            error_ = session_error();
            transient_ = session_->failure_is_transient();
            co_return false;
        }
        if (greeting->code != cloudproto::reply_code::greeting) {
            error_ = "the node refused the connection: " + describe(*greeting);
            transient_ = greeting->transient();
            co_return false;
        }

        auto hello = co_await session_->hello("cloud-submit");
        if (!hello) {
            error_ = session_error();
            transient_ = session_->failure_is_transient();
            co_return false;
        }
        if (hello->code != cloudproto::reply_code::ok) {
            error_ = "HELLO refused: " + describe(*hello);
            transient_ = hello->transient();
            co_return false;
        }
        const auto& first = hello->lines.front();
        node_name_ = printable(first.substr(0, first.find(' ')));
        co_return true;
    }

    asio::awaitable<int> submit() {
        std::string error;
        auto script = read_file(options_.script, error);
        auto descriptor = read_file(options_.descriptor, error);
        if (!script || !descriptor)
            co_return tool_error(error);
        std::string id =
            options_.job_id.empty() ? cloudproto::make_job_id()
                                    : options_.job_id;

        // Hand in, again under the same id while the failure is one a new
        // connection may not meet.
        std::optional<Reply> reply;
        for (int attempt = 1;; ++attempt) {
            bool connected = co_await open();
            if (connected) {
                auto max = session_->capabilities().max_job_bytes;
                auto size = script->size() + descriptor->size();
                if (max && size > max)
                    co_return tool_error(fmt::format(
                        "job is {} bytes; {} takes at most {}", size,
                        node_name_, max));
                reply = co_await session_->submit(id, *descriptor, *script);
                if (reply)
                    break;
                error_ = session_error();
                transient_ = session_->failure_is_transient();
            }
            if (!transient_ || attempt == submit_attempts)
                co_return tool_error(error_);
            progress(fmt::format("{}; trying again", error_));
            asio::steady_timer t(io_, std::chrono::seconds(attempt));
            co_await t.async_wait(asio::use_awaitable);
        }
        if (reply->code != cloudproto::reply_code::ok)
            co_return tool_error("the node refused the job: " +
                                 describe(*reply));

        if (!options_.wait) {
            fmt::print("{}\n", id);
            co_await session_->quit();
            co_return 0;
        }
        progress(fmt::format("job {} accepted by {}", id, node_name_));
        co_return co_await wait_and_print(id);
    }

    asio::awaitable<int> status() {
        bool connected = co_await open();
        if (!connected)
            co_return tool_error(error_);
        auto reply = co_await session_->status(options_.job_id);
        if (!reply)
            co_return tool_error(session_error());
        if (reply->code != cloudproto::reply_code::ok)
            co_return tool_error(describe(*reply));
        for (const auto& line : reply->lines)
            fmt::print("{}\n", printable(line));
        co_await session_->quit();
        co_return 0;
    }

    asio::awaitable<int> result() {
        bool connected = co_await open();
        if (!connected)
            co_return tool_error(error_);
        if (options_.wait)
            co_return co_await wait_and_print(options_.job_id);
        co_return co_await print_result(options_.job_id);
    }

    // Follows the job with WAIT until it is final, then prints it.
    asio::awaitable<int> wait_and_print(const std::string& id) {
        auto started = std::chrono::steady_clock::now();
        std::optional<JobState> shown;
        auto on_state = [&](JobState s) {
            if (s == shown)
                return;
            shown = s;
            auto elapsed = std::chrono::duration<double>(
                std::chrono::steady_clock::now() - started);
            progress(fmt::format("job {} {} ({:.1f} s)", id, to_string(s),
                                 elapsed.count()));
        };
        for (;;) {
            auto reply = co_await session_->wait(id, wait_step, on_state);
            if (!reply)
                co_return tool_error(session_error());
            if (reply->code != cloudproto::reply_code::ok)
                co_return tool_error(describe(*reply));
            auto field = cloudproto::parse_field(reply->last_line());
            auto state = field ? cloudproto::job_state_from_string(field->second)
                               : std::nullopt;
            if (state && cloudproto::is_final(*state))
                break;
        }
        co_return co_await print_result(id);
    }

    asio::awaitable<int> print_result(const std::string& id) {
        cloudproto::JobResult r;
        auto reply = co_await session_->result(id, r);
        if (!reply)
            co_return tool_error(session_error());
        if (reply->code != cloudproto::reply_code::ok)
            co_return tool_error(describe(*reply));
        co_await session_->quit();
        write_job_output(r.out, r.err);

        auto rep = r.report;
        rep.node = printable(rep.node);
        rep.error = printable(rep.error);
        if (rep.stdout_truncated)
            progress(fmt::format("stdout was {} bytes; the first {} are shown",
                                 rep.stdout_bytes, r.out.size()));
        if (rep.stderr_truncated)
            progress(fmt::format("stderr was {} bytes; the first {} are shown",
                                 rep.stderr_bytes, r.err.size()));
        if (rep.state == JobState::failed)
            co_return tool_error(fmt::format("job {} could not run on {}: {}",
                                             id, rep.node, rep.error));
        auto seconds = rep.duration ? rep.duration->count() / 1000.0 : 0.0;
        switch (rep.outcome.value_or(cloudproto::Outcome::exited)) {
        case cloudproto::Outcome::timeout:
            progress(fmt::format("job {} ran out of time after {:.1f} s on {}",
                                 id, seconds, rep.node));
            co_return exit_job_timeout;
        case cloudproto::Outcome::signalled:
            progress(fmt::format("job {} killed by signal {} on {}", id,
                                 rep.signal.value_or(0), rep.node));
            co_return exit_signal_base + rep.signal.value_or(0);
        case cloudproto::Outcome::exited:
            progress(fmt::format("job {} exited {} after {:.1f} s on {}", id,
                                 rep.exit_code.value_or(0), seconds,
                                 rep.node));
            co_return rep.exit_code.value_or(0);
        }
        co_return 0;
    }

    asio::io_context& io_;
    const Options& options_;
    asio::ssl::context* tls_;
    std::optional<ClientSession> session_;
    std::string node_name_;
    std::string error_;
    bool transient_ = false;
};

} // namespace

int main(int argc, char** argv) {
    std::string error;
    auto options = parse_options(argc, argv, error);
    if (!options)
        return tool_error(error);
    if (options->action == Action::help) {
        fmt::print("{}", usage);
        return 0;
    }
    if (options->action == Action::version) {
        fmt::print("cloud-submit 0.1.0 ({})\n", cloudproto::protocol_name);
        return 0;
    }

    try {
        std::optional<asio::ssl::context> tls;
        if (!options->plain)
            tls.emplace(cloudproto::tls::make_client_context(
                options->ca_file ? std::optional<std::filesystem::path>(
                                       *options->ca_file)
                                 : std::nullopt));
        asio::io_context io;
        Submitter submitter(io, *options, tls ? &*tls : nullptr);
        int status = exit_tool_error;
        asio::co_spawn(io, submitter.run(),
                       [&](std::exception_ptr e, int s) {
                           submitter.close();
                           if (e)
                               std::rethrow_exception(e);
                           status = s;
                       });
        io.run();
        return status;
    } catch (const std::exception& e) {
        return tool_error(e.what());
    }
}
