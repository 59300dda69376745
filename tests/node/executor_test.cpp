#include "node/executor.hpp"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using cloudnode::ExecutionRequest;
using cloudnode::ExecutionResult;
using cloudnode::Executor;
namespace platform = cloudnode::platform;
using cloudproto::Outcome;

constexpr const char* bash = "/bin/bash";
constexpr const char* python = "/usr/bin/python3";

// Generous: only the timeout cases wait on it.
constexpr auto default_timeout = 10s;
constexpr std::size_t default_cap_bytes = 1 << 20;

// A folder of the test's own, removed at the end of the case.
struct TempFolder {
    TempFolder() {
        std::string name =
            (fs::temp_directory_path() / "cloudproto-executor-XXXXXX").string();
        REQUIRE(mkdtemp(name.data()) != nullptr);
        path = name;
    }
    ~TempFolder() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path path;
};

// Job ids unique to this run, so /proc scans see only our processes.
std::string unique_id(std::string_view what) {
    static int serial = 0;
    return "exectest-" + std::to_string(getpid()) + "-" +
           std::to_string(++serial) + "-" + std::string(what);
}

ExecutionRequest make_job(std::string_view what, const char* interpreter,
                          std::string script,
                          std::vector<std::string> args = {}) {
    ExecutionRequest request;
    request.job_id = unique_id(what);
    request.command = {interpreter, "{script}"};
    request.command.insert(request.command.end(), args.begin(), args.end());
    request.script = std::move(script);
    request.script_name =
        std::string_view(interpreter) == python ? "job.py" : "job.sh";
    request.timeout = default_timeout;
    request.max_output_bytes = default_cap_bytes;
    return request;
}

// Only the limits layer: the containment layers have their own tests.
const platform::Containment& plain_containment() {
    static auto containment = platform::Containment::minimal();
    return *containment;
}

struct Node {
    TempFolder root;
    asio::io_context io;
    Executor executor{io, root.path, plain_containment()};

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

std::string read_whole(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// Live processes whose argv or environment holds `needle`.
std::vector<std::string> processes_with(std::string_view needle) {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string pid = entry.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const std::string text = read_whole(entry.path() / "cmdline") + '\0' +
                                 read_whole(entry.path() / "environ");
        if (text.find(needle) != std::string::npos)
            found.push_back(pid);
    }
    return found;
}

// Every process a job starts inherits this entry.
std::string job_env_entry(const std::string& job_id) {
    return "CLOUDPROTO_JOB_ID=" + job_id + '\0';
}

std::string bracketed(const std::vector<std::string>& args) {
    std::string text;
    for (const auto& arg : args)
        text += "[" + arg + "]\n";
    return text;
}

long long millis(std::chrono::milliseconds d) {
    return d.count();
}

} // namespace

TEST_CASE("arguments reach the script byte for byte") {
    Node node;
    const std::vector<std::string> args = {
        "two words", "it's \"quoted\"", "$(touch pwned)", "*",  "héllo wörld ☃",
        "",          "back\\slash",     "new\nline",      "--", "-c"};

    SUBCASE("bash") {
        auto request = make_job("args-bash", bash,
                                "for a in \"$@\"; do printf '[%s]\\n' "
                                "\"$a\"; done\n",
                                args);
        const auto result = node.run(request);
        CHECK(result.kind == ExecutionResult::Kind::finished);
        CHECK(result.outcome == Outcome::exited);
        CHECK(result.exit_code == 0);
        CHECK(result.out.bytes == bracketed(args));
        CHECK(result.err.bytes == "");
    }
    SUBCASE("python") {
        auto request = make_job("args-python", python,
                                "import sys\n"
                                "for a in sys.argv[1:]:\n"
                                "    print(f'[{a}]')\n",
                                args);
        const auto result = node.run(request);
        CHECK(result.outcome == Outcome::exited);
        CHECK(result.exit_code == 0);
        CHECK(result.out.bytes == bracketed(args));
        CHECK(result.err.bytes == "");
    }
    CHECK(node.work_root_empty());
}

TEST_CASE("exit codes and signals are reported") {
    Node node;

    SUBCASE("exit 3") {
        const auto result = node.run(make_job("exit3", bash, "exit 3\n"));
        CHECK(result.kind == ExecutionResult::Kind::finished);
        CHECK(result.outcome == Outcome::exited);
        CHECK(result.exit_code == 3);
        CHECK(result.error == "");
    }
    SUBCASE("killed by a signal") {
        const auto result =
            node.run(make_job("kill9", bash, "echo before\nkill -9 $$\n"));
        CHECK(result.outcome == Outcome::signalled);
        CHECK(result.signal == SIGKILL);
        CHECK(result.out.bytes == "before\n");
    }
    SUBCASE("python exit code") {
        const auto result =
            node.run(make_job("pyexit", python, "import sys\nsys.exit(42)\n"));
        CHECK(result.outcome == Outcome::exited);
        CHECK(result.exit_code == 42);
    }
}

TEST_CASE("the job runs alone: empty stdin, clean env, own folder") {
    Node node;
    setenv("CLOUDPROTO_TEST_LEAK", "node-secret", 1);
    // Not close-on-exec: the job must still not see it.
    const int node_fd = open("/dev/null", O_RDONLY);
    REQUIRE(node_fd >= 0);

    const auto started = std::chrono::steady_clock::now();
    auto request = make_job("env", bash,
                            "if read -r line; then echo \"stdin:$line\"; "
                            "else echo stdin:eof; fi\n"
                            "echo \"home:$HOME\"\n"
                            "echo \"tmp:$TMPDIR\"\n"
                            "echo \"pwd:$(pwd -P)\"\n"
                            "echo \"mode:$(stat -c %a .)\"\n"
                            "echo \"path:$PATH\"\n"
                            "echo \"lang:$LANG\"\n"
                            "echo \"id:$CLOUDPROTO_JOB_ID\"\n"
                            "echo \"leak:${CLOUDPROTO_TEST_LEAK-none}\"\n"
                            "echo \"core:$(ulimit -c)\"\n"
                            "echo \"fds:$(ls /proc/self/fd | sort -n | "
                            "tr '\\n' ' ')\"\n");
    const auto result = node.run(request);
    const auto elapsed = std::chrono::steady_clock::now() - started;
    close(node_fd);
    unsetenv("CLOUDPROTO_TEST_LEAK");

    const std::string folder = fs::canonical(node.root.path).string() + "/job-";
    const std::string& out = result.out.bytes;
    CHECK(result.exit_code == 0);
    CHECK(out.find("stdin:eof\n") == 0);
    CHECK(out.find("home:" + folder) != std::string::npos);
    CHECK(out.find("tmp:" + folder) != std::string::npos);
    CHECK(out.find("pwd:" + folder) != std::string::npos);
    CHECK(out.find("mode:700\n") != std::string::npos);
    CHECK(out.find("path:/usr/local/bin:/usr/bin:/bin\n") != std::string::npos);
    CHECK(out.find("lang:C.UTF-8\n") != std::string::npos);
    CHECK(out.find("id:" + request.job_id + "\n") != std::string::npos);
    CHECK(out.find("leak:none\n") != std::string::npos);
    CHECK(out.find("core:0\n") != std::string::npos);
    // ls's own listing holds 0-2 and the folder it reads, nothing else.
    CHECK(out.find("fds:0 1 2 3 \n") != std::string::npos);
    CHECK(elapsed < 2s); // read got EOF at once
    CHECK(node.work_root_empty());
}

TEST_CASE("a flood on stderr before stdout: no deadlock, counted, capped") {
    Node node;
    constexpr std::size_t cap = 4096;

    SUBCASE("python, 5 MB of stderr then stdout") {
        auto request = make_job("flood", python,
                                "import sys\n"
                                "sys.stderr.buffer.write(b'e' * 5_000_000)\n"
                                "sys.stderr.flush()\n"
                                "sys.stdout.write('o' * 1000)\n");
        request.max_output_bytes = cap;
        const auto result = node.run(request);
        CHECK(result.outcome == Outcome::exited);
        CHECK(result.exit_code == 0);
        CHECK(result.err.total == 5'000'000);
        CHECK(result.err.bytes == std::string(cap, 'e'));
        CHECK(result.err.truncated());
        CHECK(result.out.total == 1000);
        CHECK(result.out.bytes == std::string(1000, 'o'));
        CHECK_FALSE(result.out.truncated());
    }
    SUBCASE("bash, both streams large, nothing kept") {
        auto request = make_job("flood2", bash,
                                "head -c 3000000 /dev/zero >&2\n"
                                "head -c 7000000 /dev/zero\n"
                                "head -c 1000000 /dev/zero >&2\n");
        request.max_output_bytes = 0;
        const auto result = node.run(request);
        CHECK(result.exit_code == 0);
        CHECK(result.out.total == 7'000'000);
        CHECK(result.err.total == 4'000'000);
        CHECK(result.out.bytes.empty());
        CHECK(result.out.truncated());
    }
}

TEST_CASE("a timeout kills the whole tree, detached processes included") {
    Node node;
    TempFolder scratch;
    const fs::path marker = scratch.path / "late";
    const std::string token = unique_id("detached-marker");

    // The grandchild leaves its parent and session behind, ignores
    // SIGTERM and would write the marker 2 s in.
    auto request = make_job(
        "timeout", bash,
        "cat > late.py <<'EOF'\n"
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(2)\n"
        "open(sys.argv[1], 'w').write('late\\n')\n"
        "EOF\n"
        "setsid /bin/bash -c '/usr/bin/python3 late.py \"$0\" \"$1\" & "
        "exit 0' \"$1\" \"$2\" &\n"
        "sleep 30\n",
        {marker.string(), token});
    request.timeout = 1000ms;

    const auto started = std::chrono::steady_clock::now();
    const auto result = node.run(request);
    MESSAGE("timed-out job took ", millis(result.duration), " ms");

    CHECK(result.kind == ExecutionResult::Kind::finished);
    CHECK(result.outcome == Outcome::timeout);
    CHECK(result.out.bytes == "ready\n"); // the grandchild did run
    CHECK(result.duration >= 1000ms);
    CHECK(result.duration < 2000ms);
    CHECK(processes_with(token).empty());
    CHECK(processes_with(job_env_entry(request.job_id)).empty());
    CHECK(node.work_root_empty());

    std::this_thread::sleep_until(started + 3s);
    CHECK_FALSE(fs::exists(marker));
    CHECK(processes_with(token).empty());
}

TEST_CASE("a background child left behind ends with the job") {
    Node node;
    auto request = make_job("leftover", bash,
                            "sleep 1000 &\n"
                            "setsid sleep 1000 &\n"
                            "nohup sleep 1000 >/dev/null 2>&1 &\n"
                            "echo done\n"
                            "exit 0\n");
    const auto result = node.run(request);
    MESSAGE("job with leftovers took ", millis(result.duration), " ms");

    CHECK(result.outcome == Outcome::exited);
    CHECK(result.exit_code == 0);
    CHECK(result.out.bytes == "done\n");
    CHECK(result.duration < 1000ms);
    CHECK(processes_with(job_env_entry(request.job_id)).empty());
    CHECK(node.work_root_empty());
}

// Level 1: the job runs as the node's user and may signal its shepherd.
TEST_CASE("a job that kills its shepherd leaves nothing behind") {
    Node node;
    const std::string tag = unique_id("escapee");
    auto request = make_job(
        "killer", bash,
        "setsid bash -c '(trap \"\" TERM; exec -a \"$0\" sleep 20) &' \"$1\"\n"
        "echo killing\n"
        "kill -9 $PPID\n"
        "sleep 20\n",
        {tag});
    request.timeout = 5000ms;

    const auto result = node.run(request);
    MESSAGE("job that killed its shepherd took ", millis(result.duration),
            " ms");

    // No report: the shepherd could not give one.
    CHECK(result.kind == ExecutionResult::Kind::failed_to_start);
    CHECK(result.error.find("without a report") != std::string::npos);
    CHECK(result.out.bytes == "killing\n");
    CHECK(result.duration < 2000ms);
    CHECK(processes_with(tag).empty());
    CHECK(processes_with(job_env_entry(request.job_id)).empty());
    CHECK(node.work_root_empty());
}

TEST_CASE("a job that stops its shepherd still ends at its timeout") {
    Node node;
    auto request = make_job("stopper", bash,
                            "kill -STOP $PPID\n"
                            "sleep 20\n");
    request.timeout = 1000ms;

    std::optional<ExecutionResult> result;
    node.executor.run(request,
                      [&](ExecutionResult r) { result = std::move(r); });
    node.io.run_for(8s);
    REQUIRE(result.has_value());
    MESSAGE("job that stopped its shepherd took ", millis(result->duration),
            " ms");

    CHECK(result->outcome == Outcome::timeout);
    CHECK(result->duration < 4000ms);
    CHECK(processes_with(job_env_entry(request.job_id)).empty());
    CHECK(node.work_root_empty());
}

// A write end of the job's output held outside its tree (here by the
// test itself, handed over a Unix socket) must not hold the job.
TEST_CASE("output held open elsewhere does not hold the job's end") {
    Node node;
    TempFolder scratch;
    const fs::path socket_path = scratch.path / "fd.sock";

    const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path.c_str(),
                 sizeof address.sun_path - 1);
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&address),
                 sizeof address) == 0);
    REQUIRE(listen(listener, 1) == 0);

    // Takes the job's stdout and keeps it for 3 s.
    std::thread holder([listener] {
        const int conn = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0)
            return;
        char byte;
        iovec iov{&byte, 1};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
        msghdr message{};
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        int held = -1;
        if (recvmsg(conn, &message, MSG_CMSG_CLOEXEC) > 0) {
            const cmsghdr* c = CMSG_FIRSTHDR(&message);
            if (c != nullptr && c->cmsg_type == SCM_RIGHTS)
                std::memcpy(&held, CMSG_DATA(c), sizeof held);
        }
        std::this_thread::sleep_for(3s);
        if (held >= 0)
            close(held);
        close(conn);
    });

    auto request = make_job("handover", python,
                            "import socket, sys\n"
                            "s = socket.socket(socket.AF_UNIX)\n"
                            "s.connect(sys.argv[1])\n"
                            "socket.send_fds(s, [b'x'], [1])\n"
                            "print('handed', flush=True)\n",
                            {socket_path.string()});
    const auto result = node.run(request);
    holder.join();
    close(listener);
    MESSAGE("job whose output was held elsewhere took ",
            millis(result.duration), " ms");

    CHECK(result.outcome == Outcome::exited);
    CHECK(result.exit_code == 0);
    CHECK(result.out.bytes == "handed\n");
    CHECK(result.duration < 2000ms);
    CHECK(node.work_root_empty());
}

TEST_CASE("the working folder goes, whatever the job did to it") {
    Node node;
    TempFolder outside;
    const fs::path kept = outside.path / "kept";
    std::ofstream(kept) << "mine\n";
    REQUIRE(chmod(outside.path.c_str(), 0500) == 0);

    auto request = make_job("readonly", bash,
                            "mkdir -p deep/er && echo x > deep/er/file\n"
                            "chmod 0 deep/er && chmod 500 deep\n"
                            "ln -s \"$1\" outside\n"
                            "ln -s \"$1/kept\" kept\n"
                            "chmod 500 .\n",
                            {outside.path.string()});
    const auto result = node.run(request);

    CHECK(result.exit_code == 0);
    CHECK(result.error == "");
    CHECK(node.work_root_empty());
    // Symlinks were removed, not followed.
    CHECK(read_whole(kept) == "mine\n");
    struct stat st {};
    REQUIRE(stat(outside.path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0500);
    chmod(outside.path.c_str(), 0700);
}

TEST_CASE("a job that cannot start is failed_to_start, with the reason") {
    Node node;

    SUBCASE("missing interpreter") {
        auto request = make_job("missing", bash, "echo never\n");
        request.command.front() = "/nonexistent/interpreter";
        const auto result = node.run(request);
        CHECK(result.kind == ExecutionResult::Kind::failed_to_start);
        CHECK(result.error.find("/nonexistent/interpreter") !=
              std::string::npos);
        CHECK(result.error.find("No such file or directory") !=
              std::string::npos);
        CHECK(result.out.total == 0);
    }
    SUBCASE("not executable") {
        auto request = make_job("noexec", bash, "echo never\n");
        request.command.front() = "/dev/null";
        const auto result = node.run(request);
        CHECK(result.kind == ExecutionResult::Kind::failed_to_start);
        CHECK(result.error.find("Permission denied") != std::string::npos);
    }
    SUBCASE("bad script name, reported on io, not inside run") {
        auto request = make_job("badname", bash, "echo never\n");
        request.script_name = "../escape.sh";
        bool called = false;
        node.executor.run(request, [&](ExecutionResult result) {
            called = true;
            CHECK(result.kind == ExecutionResult::Kind::failed_to_start);
        });
        CHECK_FALSE(called);
        node.io.run();
        CHECK(called);
    }
    SUBCASE("a bare program name is found in the job's PATH") {
        auto request = make_job("bare", bash, "echo found\n");
        request.command.front() = "bash";
        const auto result = node.run(request);
        CHECK(result.kind == ExecutionResult::Kind::finished);
        CHECK(result.out.bytes == "found\n");
    }
    CHECK(node.work_root_empty());
}

TEST_CASE("twenty jobs at once all complete correctly") {
    Node node;
    constexpr int jobs = 20;
    std::vector<std::optional<ExecutionResult>> results(jobs);

    for (int i = 0; i < jobs; ++i) {
        const std::string n = std::to_string(i);
        auto request =
            i % 2 == 0 ? make_job("many", bash,
                                  "head -c 200000 /dev/zero | wc -c\n"
                                  "echo \"job $1\" >&2\nexit $(( $1 % 7 ))\n",
                                  {n})
                       : make_job("many", python,
                                  "import sys\n"
                                  "print(len(b'x' * 200000))\n"
                                  "print('job', sys.argv[1], file=sys.stderr)\n"
                                  "sys.exit(int(sys.argv[1]) % 7)\n",
                                  {n});
        node.executor.run(request, [&results, i](ExecutionResult result) {
            results[i] = std::move(result);
        });
    }
    CHECK(node.executor.running() == jobs);
    node.io.run();
    CHECK(node.executor.running() == 0);

    for (int i = 0; i < jobs; ++i) {
        CAPTURE(i);
        REQUIRE(results[i].has_value());
        CHECK(results[i]->outcome == Outcome::exited);
        CHECK(results[i]->exit_code == i % 7);
        CHECK(results[i]->out.bytes == "200000\n");
        CHECK(results[i]->err.bytes == "job " + std::to_string(i) + "\n");
    }
    CHECK(node.work_root_empty());
}

TEST_CASE("stop_all kills every running job and done still runs") {
    Node node;
    constexpr int jobs = 3;
    int done = 0;
    std::vector<std::string> ids;
    for (int i = 0; i < jobs; ++i) {
        auto request = make_job("stopall", bash, "sleep 30 & wait\n");
        ids.push_back(request.job_id);
        node.executor.run(request, [&done](ExecutionResult result) {
            ++done;
            CHECK(result.outcome == Outcome::signalled);
            CHECK(result.signal == SIGKILL);
            CHECK(result.duration < 2000ms);
        });
    }
    asio::steady_timer later(node.io, 200ms);
    later.async_wait([&](std::error_code) { node.executor.stop_all(); });
    node.io.run();

    CHECK(done == jobs);
    for (const auto& id : ids)
        CHECK(processes_with(job_env_entry(id)).empty());
    CHECK(node.work_root_empty());
}

TEST_CASE("an Executor destroyed mid-job still kills and cleans up") {
    TempFolder root;
    asio::io_context io;
    bool called = false;
    auto request = make_job("destroyed", bash, "sleep 30 & wait\n");
    {
        Executor executor(io, root.path, plain_containment());
        executor.run(request, [&](ExecutionResult) { called = true; });
        io.run_for(200ms);
    }
    const auto started = std::chrono::steady_clock::now();
    io.run(); // the tree's end is still awaited, silently
    CHECK(std::chrono::steady_clock::now() - started < 2s);
    CHECK_FALSE(called);
    CHECK(processes_with(job_env_entry(request.job_id)).empty());
    CHECK(fs::is_empty(root.path));
}

TEST_CASE("folders left by a node that was killed are removed at start") {
    TempFolder root;
    fs::create_directories(root.path / "job-left-behind-abc123" / "deep");
    std::ofstream(root.path / "job-left-behind-abc123" / "deep" / "file")
        << "x";
    fs::create_directories(root.path / "not-a-job-folder");

    asio::io_context io;
    Executor executor(io, root.path, plain_containment());
    CHECK_FALSE(fs::exists(root.path / "job-left-behind-abc123"));
    CHECK(fs::exists(root.path / "not-a-job-folder"));
}
