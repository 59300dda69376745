// What a node adds to each job, beside what starting the job's own
// interpreter costs. Run by hand against a running node (see README in
// this folder); prints medians and the ratio to the baseline.
//
//   job_overhead --node HOST:PORT --ca FILE [--jobs N] [--clients C]
//                [--plain]
//
// With C clients, C connections hand jobs in at once: the node's slots
// fill up and jobs accepted together share their flushes to disk.
#include "cloudproto/client_session.hpp"
#include "cloudproto/job_id.hpp"
#include "cloudproto/tls.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <fmt/format.h>

#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double median_ms(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// The baseline: start `bash -c :` and wait for it, as the node must.
// The baseline: start `bash -c :` `width` at a time and wait for them,
// as the node must; gives the time per round.
double spawn_bash_ms(int width) {
    auto start = Clock::now();
    char* argv[] = {const_cast<char*>("/bin/bash"), const_cast<char*>("-c"),
                    const_cast<char*>(":"), nullptr};
    std::vector<pid_t> pids(width);
    for (auto& pid : pids)
        posix_spawn(&pid, "/bin/bash", nullptr, nullptr, argv, environ);
    for (auto pid : pids) {
        int status = 0;
        waitpid(pid, &status, 0);
    }
    return std::chrono::duration<double, std::milli>(Clock::now() - start)
        .count();
}

struct Options {
    std::string host = "localhost";
    std::string port = "25683";
    std::string ca;
    bool plain = false;
    int jobs = 200;
    int clients = 1;
};

asio::awaitable<void> run_jobs(asio::io_context& io, asio::ssl::context* tls,
                               const Options& o, int jobs,
                               std::vector<double>& submit,
                               std::vector<double>& whole) {
    cloudproto::ClientSession s(io.get_executor(), tls,
                                std::chrono::seconds(30));
    auto greeting = co_await s.connect(o.host, o.port);
    std::optional<cloudproto::Reply> hello;
    if (greeting)
        hello = co_await s.hello("bench");
    if (!hello) {
        fmt::print(stderr, "cannot reach the node: {}\n", s.error());
        co_return;
    }
    const std::string descriptor =
        "runtime = \"bash\"\nreply_to = \"bench@example.org\"\n";
    const std::string script = ":\n";
    for (int i = 0; i < jobs; ++i) {
        auto id = cloudproto::make_job_id();
        auto start = Clock::now();
        auto r = co_await s.submit(id, descriptor, script);
        auto accepted = Clock::now();
        if (!r || r->code != 250) {
            fmt::print(stderr, "submit failed: {}\n",
                       r ? r->last_line() : s.error());
            co_return;
        }
        auto w = co_await s.wait(id, std::chrono::seconds(60),
                                 [](cloudproto::JobState) {});
        if (!w)
            co_return;
        auto done = Clock::now();
        using ms = std::chrono::duration<double, std::milli>;
        submit.push_back(ms(accepted - start).count());
        whole.push_back(ms(done - start).count());
    }
    co_await s.quit();
}

} // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--node") {
            std::string v = argv[i + 1];
            o.host = v.substr(0, v.rfind(':'));
            o.port = v.substr(v.rfind(':') + 1);
        } else if (a == "--ca") {
            o.ca = argv[i + 1];
        } else if (a == "--jobs") {
            o.jobs = std::max(1, std::atoi(argv[i + 1]));
        } else if (a == "--clients") {
            o.clients = std::max(1, std::atoi(argv[i + 1]));
        } else if (a == "--plain") {
            o.plain = true;
            --i;
        }
    }
    if (argc > 1 && std::strcmp(argv[argc - 1], "--plain") == 0)
        o.plain = true;

    // The baseline, as wide as the clients.
    std::vector<double> baseline;
    auto base_start = Clock::now();
    for (int i = 0; i < o.jobs / o.clients; ++i)
        baseline.push_back(spawn_bash_ms(o.clients));
    double base_total =
        std::chrono::duration<double>(Clock::now() - base_start).count();

    asio::io_context io;
    std::optional<asio::ssl::context> tls;
    if (!o.plain)
        tls.emplace(cloudproto::tls::make_client_context(
            o.ca.empty() ? std::nullopt
                         : std::optional<std::filesystem::path>(o.ca)));
    std::vector<double> submit, whole;
    for (int c = 0; c < o.clients; ++c)
        asio::co_spawn(io,
                       run_jobs(io, tls ? &*tls : nullptr, o,
                                o.jobs / o.clients, submit, whole),
                       asio::detached);
    auto start = Clock::now();
    io.run();
    double node_total =
        std::chrono::duration<double>(Clock::now() - start).count();
    if (whole.empty())
        return 1;

    double base = median_ms(baseline);
    double accept = median_ms(submit);
    double total = median_ms(whole);
    fmt::print("jobs: {}, {} client(s), each one job at a time\n",
               whole.size(), o.clients);
    fmt::print("baseline, {} x bash -c ':' at once      median {:7.3f} ms\n",
               o.clients, base);
    fmt::print("SUBMIT until 250 (stored durably)      median {:7.3f} ms\n",
               accept);
    fmt::print("SUBMIT until WAIT says done            median {:7.3f} ms\n",
               total);
    fmt::print("node's own share per job (total - baseline) {:7.3f} ms, "
               "ratio total/baseline {:.2f}\n",
               total - base, total / base);
    fmt::print("throughput: node {:.0f} jobs/s, bare spawning {:.0f}/s\n",
               whole.size() / node_total,
               baseline.size() * o.clients / base_total);
    return 0;
}
