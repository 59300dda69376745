// Batch jobs on Windows through the executor: cmd.exe, its arguments,
// exit codes, timeouts and the job object's hold on the whole tree.
// Under Wine in CI (scripts/windows-check).
#include "node/executor.hpp"

#include "node/platform/job_folder.hpp"
#include "support/temp_dir.hpp"

#include <asio/io_context.hpp>
#include <doctest/doctest.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using cloudnode::ExecutionRequest;
using cloudnode::ExecutionResult;
using cloudnode::Executor;
namespace platform = cloudnode::platform;
using cloudproto::Outcome;

constexpr auto default_timeout = 20s;
constexpr std::size_t default_cap_bytes = 1 << 20;

// Prints each of its first arguments on a line of its own, quotes and
// all; inside them, & | < > ^ ( ) are text to echo too.
constexpr const char* echo_args = "@echo off\r\n"
                                  "echo %1\r\n"
                                  "echo %2\r\n"
                                  "echo %3\r\n";

ExecutionRequest batch_job(std::string script,
                           std::vector<std::string> args = {}) {
    static int serial = 0;
    ExecutionRequest request;
    request.job_id = "wintest-" + std::to_string(++serial);
    request.command = {"cmd.exe", "/d", "/c", "{script}"};
    request.command.insert(request.command.end(), args.begin(), args.end());
    request.script = std::move(script);
    request.script_name = "job.bat";
    request.timeout = default_timeout;
    request.max_output_bytes = default_cap_bytes;
    return request;
}

struct Node {
    test_support::TempDir root{"windows-executor"};
    asio::io_context io;
    std::unique_ptr<platform::Containment> containment =
        platform::Containment::minimal();
    Executor executor{io, root.path, *containment};

    ExecutionResult run(ExecutionRequest request) {
        std::optional<ExecutionResult> result;
        executor.run(std::move(request),
                     [&](ExecutionResult r) { result = std::move(r); });
        io.run();
        io.restart();
        REQUIRE(result.has_value());
        return std::move(*result);
    }

    bool work_root_empty() const { return fs::is_empty(root.path); }
};

} // namespace

TEST_CASE("a batch job's output and exit code come back") {
    Node node;
    const auto result = node.run(batch_job("@echo off\r\n"
                                           "echo hello from batch\r\n"
                                           "echo to stderr 1>&2\r\n"
                                           "exit /b 3\r\n"));
    CHECK(result.kind == ExecutionResult::Kind::finished);
    CHECK(result.error == "");
    CHECK(result.outcome == Outcome::exited);
    CHECK(result.exit_code == 3);
    CHECK(result.out.bytes == "hello from batch\r\n");
    CHECK(result.err.bytes == "to stderr \r\n");
    CHECK(node.work_root_empty());
}

TEST_CASE("cmd.exe named with forward slashes runs the script") {
    Node node;
    auto request = batch_job("@echo off\r\necho x=%1\r\n", {"a|b"});
    request.command.front() = "C:/Windows/System32/cmd.exe";
    const auto result = node.run(request);
    CHECK(result.error == "");
    CHECK(result.exit_code == 0);
    CHECK(result.out.bytes == "x=\"a|b\"\r\n");
}

TEST_CASE("hostile arguments reach a batch script as data") {
    Node node;
    const auto result =
        node.run(batch_job(echo_args, {"a & echo INJECTED", "x|y<z>w^v(u)!",
                                       "two  spaces,semi;eq="}));
    CHECK(result.outcome == Outcome::exited);
    CHECK(result.exit_code == 0);
    CHECK(result.out.bytes == "\"a & echo INJECTED\"\r\n"
                              "\"x|y<z>w^v(u)!\"\r\n"
                              "\"two  spaces,semi;eq=\"\r\n");
}

TEST_CASE("an argument cmd.exe cannot pass is refused, never run") {
    for (const char* arg : {"say \"hi\"", "%PATH%", "100%"}) {
        CAPTURE(arg);
        Node node;
        const auto result = node.run(batch_job(echo_args, {arg}));
        CHECK(result.kind == ExecutionResult::Kind::failed_to_start);
        CHECK(result.error.find("cmd.exe") != std::string::npos);
        CHECK(node.work_root_empty());
    }
}

TEST_CASE("a job's environment is the node's choice") {
    Node node;
    const auto result = node.run(batch_job("@echo off\r\n"
                                           "echo %CLOUDPROTO_JOB_ID%\r\n"
                                           "if defined SystemRoot echo root\r\n"
                                           "cd\r\n"));
    CHECK(result.exit_code == 0);
    CHECK(result.out.bytes.starts_with("wintest-"));
    CHECK(result.out.bytes.find("root\r\n") != std::string::npos);
    CHECK(result.out.bytes.find("job-wintest-") != std::string::npos);
}

TEST_CASE("a timeout kills the whole tree, detached children included") {
    Node node;
    auto request = batch_job("@echo off\r\n"
                             "start /b cmd /d /c \"for /l %%i in (0,0,1) do "
                             "rem\"\r\n"
                             "echo started\r\n"
                             "for /l %%i in (0,0,1) do rem\r\n");
    request.timeout = 1000ms;
    const auto result = node.run(request);
    CHECK(result.kind == ExecutionResult::Kind::finished);
    CHECK(result.outcome == Outcome::timeout);
    CHECK(result.out.bytes == "started\r\n");
    CHECK(result.duration < 10s);
    CHECK(node.work_root_empty());
}

TEST_CASE("a program that is not there fails to start, and says so") {
    Node node;
    auto request = batch_job("");
    request.command = {"C:\\nowhere\\missing.exe", "{script}"};
    const auto result = node.run(request);
    CHECK(result.kind == ExecutionResult::Kind::failed_to_start);
    CHECK(result.error.find("missing.exe") != std::string::npos);
    CHECK(node.work_root_empty());
}
