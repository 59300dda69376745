#include "node/platform/posix/subreaper_posix.hpp"

#include <asio/posix/stream_descriptor.hpp>

#include <cerrno>
#include <csignal>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cloudnode::platform::subreaper {

namespace {

// Shepherds alive or not yet reaped, and strangers killed and not yet
// reaped, of this process.
struct Registry {
    std::mutex mutex;
    std::set<pid_t> shepherds;
    std::set<pid_t> strangers;
};

Registry& registry() {
    static Registry r;
    return r;
}

// Every child of every thread of this process, zombies included.
std::vector<pid_t> list_children() {
    std::vector<pid_t> children;
    DIR* tasks = opendir("/proc/self/task");
    if (tasks == nullptr)
        return children;
    while (const dirent* entry = readdir(tasks)) {
        if (entry->d_name[0] == '.')
            continue;
        std::ifstream list(std::string("/proc/self/task/") + entry->d_name +
                           "/children");
        for (pid_t pid; list >> pid;)
            children.push_back(pid);
    }
    closedir(tasks);
    return children;
}

// A stranger killed and not yet reaped; it leaves the registry with
// its watch, reaped or not (when the loop goes away first).
struct StrangerWatch {
    StrangerWatch(asio::io_context& io, pid_t pid, int pidfd)
        : pid(pid), pidfd(io, pidfd) {}
    ~StrangerWatch() {
        std::lock_guard lock(registry().mutex);
        registry().strangers.erase(pid);
    }
    pid_t pid;
    asio::posix::stream_descriptor pidfd;
};

// Reaps `pid` once its pidfd turns readable, then looks again.
void reap_when_gone(asio::io_context& io, pid_t pid) {
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
        // XXX: out of descriptors; the stranger stays a zombie until a
        // later sweep finds it again.
        std::lock_guard lock(registry().mutex);
        registry().strangers.erase(pid);
        return;
    }
    auto watch = std::make_shared<StrangerWatch>(io, pid, pidfd);
    watch->pidfd.async_wait(
        asio::posix::descriptor_base::wait_read,
        [&io, watch](std::error_code ec) {
            if (ec == asio::error::operation_aborted)
                return;
            siginfo_t info{};
            waitid(P_PID, static_cast<id_t>(watch->pid), &info,
                   WEXITED | WNOHANG);
            kill_strangers(io);
        });
}

} // namespace

void become() {
    static std::once_flag once;
    std::call_once(once, [] { prctl(PR_SET_CHILD_SUBREAPER, 1); });
}

std::unique_lock<std::mutex> hold_shepherds() {
    return std::unique_lock(registry().mutex);
}

void add_shepherd(pid_t pid) {
    registry().shepherds.insert(pid);
}

void forget_shepherd(pid_t pid) {
    std::lock_guard lock(registry().mutex);
    registry().shepherds.erase(pid);
}

void kill_strangers(asio::io_context& io) {
    std::vector<pid_t> found;
    {
        auto lock = hold_shepherds();
        for (pid_t pid : list_children()) {
            if (registry().shepherds.count(pid) != 0)
                continue;
            // Ours and not reaped: neither the pid nor a group it leads
            // can be anyone else's.
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            if (registry().strangers.insert(pid).second)
                found.push_back(pid);
        }
    }
    for (pid_t pid : found)
        reap_when_gone(io, pid);
}

} // namespace cloudnode::platform::subreaper
