// What each containment level adds to one job, beside starting `bash -c :`
// bare. Runs the executor directly (no session, no spool): each round
// runs one trivial job at every level the machine allows and one bare
// spawn, so that all share the machine's noise; prints medians and the
// ratio to the bare spawn. Run by hand, as root for every level:
//
//   containment_overhead [--jobs N] [--work DIR] [--only LEVEL-NAME]
#include "node/executor.hpp"
#include "node/platform/containment.hpp"

#include <asio/io_context.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace platform = cloudnode::platform;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::duration<double, std::milli>;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

double bare_bash_ms() {
    auto start = Clock::now();
    char* argv[] = {const_cast<char*>("/bin/bash"), const_cast<char*>("-c"),
                    const_cast<char*>(":"), nullptr};
    pid_t pid;
    if (posix_spawn(&pid, "/bin/bash", nullptr, nullptr, argv, environ) == 0) {
        int status;
        waitpid(pid, &status, 0);
    }
    return Ms(Clock::now() - start).count();
}

// One level to measure: the layers left off, and what the probe gave.
struct Level {
    std::string name;
    std::vector<platform::Layer> disabled;
    std::unique_ptr<platform::Containment> containment;
    std::vector<double> ms;
};

double run_one(asio::io_context& io, cloudnode::Executor& executor) {
    cloudnode::ExecutionRequest r;
    r.job_id = "bench-containment-overhead";
    r.command = {"/bin/bash", "{script}"};
    r.script = ":\n";
    r.script_name = "job.sh";
    r.timeout = std::chrono::seconds(30);
    r.max_output_bytes = 4096;
    r.limits = {256 * 1024 * 1024, 60, 64, 16 * 1024 * 1024, 256};
    auto start = Clock::now();
    std::optional<cloudnode::ExecutionResult> result;
    executor.run(r, [&](cloudnode::ExecutionResult e) { result = e; });
    io.run();
    io.restart();
    if (!result || result->kind != cloudnode::ExecutionResult::Kind::finished)
        fmt::print(stderr, "job failed: {}\n", result ? result->error : "?");
    return Ms(Clock::now() - start).count();
}

} // namespace

int main(int argc, char** argv) {
    int jobs = 200;
    std::string only;
    fs::path work = fs::temp_directory_path() / "cloudproto-bench-work";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--jobs") == 0)
            jobs = std::atoi(argv[i + 1]);
        else if (std::strcmp(argv[i], "--work") == 0)
            work = argv[i + 1];
        else if (std::strcmp(argv[i], "--only") == 0)
            only = argv[i + 1];
    }
    fs::create_directories(work);
    fs::permissions(work, fs::perms::owner_all | fs::perms::others_exec);

    using L = platform::Layer;
    std::vector<Level> levels;
    levels.push_back({"all layers", {}, nullptr, {}});
    levels.push_back({"no cgroup", {L::cgroup}, nullptr, {}});
    levels.push_back({"no namespaces", {L::namespaces}, nullptr, {}});
    // As root, jobs never run without the uid layer.
    levels.push_back({geteuid() == 0 ? "uid only" : "limits only",
                      {L::namespaces, L::cgroup, L::seccomp},
                      nullptr,
                      {}});
    if (!only.empty())
        std::erase_if(levels, [&](const Level& l) { return l.name != only; });
    // Each level its own slot uid: no two nodes share one.
    std::uint32_t first_uid = 1'900'000'000;
    for (auto& l : levels) {
        platform::ContainmentSettings s;
        s.disabled = l.disabled;
        s.work_root = work;
        s.slots = 1;
        s.first_uid = first_uid++;
        l.containment = platform::Containment::probe(s);
    }

    asio::io_context io;
    std::vector<std::unique_ptr<cloudnode::Executor>> executors;
    for (auto& l : levels)
        executors.push_back(std::make_unique<cloudnode::Executor>(
            io, work, *l.containment));
    std::vector<double> bare;
    for (int i = 0; i < jobs; ++i) {
        bare.push_back(bare_bash_ms());
        for (std::size_t k = 0; k < levels.size(); ++k)
            levels[k].ms.push_back(run_one(io, *executors[k]));
    }

    double base = median(bare);
    fmt::print("{} rounds; bare bash -c : median {:.2f} ms\n", jobs, base);
    for (const auto& l : levels)
        fmt::print("{:<14} {:<44} median {:6.2f} ms  ratio {:5.2f}\n", l.name,
                   l.containment->describe(), median(l.ms),
                   median(l.ms) / base);
    return 0;
}
