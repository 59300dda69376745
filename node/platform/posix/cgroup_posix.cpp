#include "node/platform/posix/cgroup_posix.hpp"

#include <array>
#include <cerrno>
#include <csignal>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include <ctime>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cloudnode::platform::cgroup {

namespace fs = std::filesystem;

namespace {

// v1 lists members to kill them one by one; a job that forks while
// being swept is bounded by pids.max, so this many rounds end it.
constexpr int max_kill_rounds = 1000;

constexpr std::string_view folder_prefix = "cloudproto-";

std::string read_file(const fs::path& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::vector<std::string> split(std::string_view text, char separator) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t end = text.find(separator, start);
        if (end == std::string_view::npos)
            end = text.size();
        parts.emplace_back(text.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

bool has_word(std::string_view list, std::string_view word, char separator) {
    for (const auto& w : split(list, separator)) {
        if (w == word)
            return true;
    }
    return false;
}

// Writes `value` to a control file; throws naming the file.
void write_control(const fs::path& path, std::string_view value) {
    const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    ssize_t n = -1;
    if (fd >= 0) {
        n = write(fd, value.data(), value.size());
        const int error = errno;
        close(fd);
        errno = error;
    }
    if (n != static_cast<ssize_t>(value.size()))
        throw std::system_error(errno, std::system_category(),
                                "cannot write " + path.string());
}

// One mounted cgroup hierarchy, from /proc/self/mountinfo.
struct Mount {
    fs::path point;
    std::string root;    // the part of the hierarchy mounted there
    std::string type;    // "cgroup" or "cgroup2"
    std::string options; // super options: the v1 controllers
};

std::vector<Mount> cgroup_mounts() {
    std::vector<Mount> mounts;
    std::istringstream lines(read_file("/proc/self/mountinfo"));
    for (std::string line; std::getline(lines, line);) {
        auto dash = line.find(" - ");
        if (dash == std::string::npos)
            continue;
        auto before = split(line.substr(0, dash), ' ');
        auto after = split(line.substr(dash + 3), ' ');
        if (before.size() < 5 || after.size() < 3)
            continue;
        if (after[0] == "cgroup" || after[0] == "cgroup2")
            mounts.push_back({before[4], before[3], after[0], after[2]});
    }
    return mounts;
}

// The node's cgroup in the hierarchy whose /proc/self/cgroup line has
// `controllers` (v1: one controller among them; v2: empty).
std::optional<std::string> own_path(std::string_view controller) {
    std::istringstream lines(read_file("/proc/self/cgroup"));
    for (std::string line; std::getline(lines, line);) {
        auto first = line.find(':');
        auto second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos)
            continue;
        auto controllers = line.substr(first + 1, second - first - 1);
        bool match = controller.empty()
                         ? controllers.empty()
                         : has_word(controllers, controller, ',');
        if (match)
            return line.substr(second + 1);
    }
    return std::nullopt;
}

fs::path folder_in(const Mount& m, const std::string& path) {
    std::string relative = path;
    if (m.root != "/" && relative.starts_with(m.root))
        relative = relative.substr(m.root.size());
    return m.point / fs::path(relative).relative_path();
}

// Folders of nodes that died without removing them: their jobs' folders
// are empty by now (every process of a job dies with its shepherd).
void remove_stale(const fs::path& base) {
    std::error_code ec;
    for (auto& e : fs::directory_iterator(base, ec)) {
        auto name = e.path().filename().string();
        if (!name.starts_with(folder_prefix) || !e.is_directory(ec))
            continue;
        auto pid = name.substr(folder_prefix.size());
        if (pid.empty() || pid.find_first_not_of("0123456789") !=
                               std::string::npos)
            continue;
        if (fs::exists("/proc/" + pid, ec))
            continue;
        for (auto& job : fs::directory_iterator(e.path(), ec)) {
            if (job.is_directory(ec))
                rmdir(job.path().c_str());
        }
        rmdir(e.path().c_str());
    }
}

fs::path make_node_folder(const fs::path& base) {
    remove_stale(base);
    auto folder = base / (std::string(folder_prefix) + std::to_string(getpid()));
    if (mkdir(folder.c_str(), 0755) != 0 && errno != EEXIST)
        throw std::system_error(errno, std::system_category(),
                                "cannot create " + folder.string());
    return folder;
}

// v2: the controllers must be enabled in every folder above the jobs'.
// A folder that holds processes cannot enable them (the kernel's rule of
// no internal processes), so a node not at the root moves itself into a
// leaf of its own first, as a delegated service does.
std::optional<Root> prepare_unified(const Mount& m, std::string& why) {
    auto path = own_path("");
    if (!path) {
        why = "the node's cgroup v2 path is unknown";
        return std::nullopt;
    }
    fs::path base = folder_in(m, *path);
    auto available = read_file(base / "cgroup.controllers");
    if (!has_word(available, "memory", ' ') ||
        !has_word(available, "pids", ' ')) {
        why = "cgroup v2 lacks the memory and pids controllers here";
        return std::nullopt;
    }
    try {
        if (*path != "/") {
            auto leaf = base / "cloudproto-node";
            if (mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST)
                throw std::system_error(errno, std::system_category(),
                                        "cannot create " + leaf.string());
            write_control(leaf / "cgroup.procs", "0");
        }
        write_control(base / "cgroup.subtree_control", "+memory +pids");
        Root root{true, {make_node_folder(base)}};
        write_control(root.folders[0] / "cgroup.subtree_control",
                      "+memory +pids");
        return root;
    } catch (const std::system_error& e) {
        why = e.what();
        return std::nullopt;
    }
}

std::optional<Root> prepare_v1(const std::vector<Mount>& mounts,
                               std::string& why) {
    Root root;
    for (std::string_view controller : {"memory", "pids"}) {
        const Mount* found = nullptr;
        for (const auto& m : mounts) {
            if (m.type == "cgroup" && has_word(m.options, controller, ','))
                found = &m;
        }
        auto path = own_path(controller);
        if (!found || !path) {
            why = "no cgroup hierarchy with the " + std::string(controller) +
                  " controller";
            return std::nullopt;
        }
        try {
            root.folders.push_back(make_node_folder(folder_in(*found, *path)));
        } catch (const std::system_error& e) {
            why = e.what();
            return std::nullopt;
        }
    }
    return root;
}

// The shepherd lays out 0-3 for the job: descriptors it must keep are
// opened above them, out of the way of its dup2s.
constexpr int first_kept_fd = 10;

int open_high(const fs::path& path, int flags) {
    const int fd = open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0 || fd >= first_kept_fd)
        return fd;
    const int high = fcntl(fd, F_DUPFD_CLOEXEC, first_kept_fd);
    const int error = errno;
    close(fd);
    errno = error;
    return high;
}

// "key value" lines: the value of `key`, 0 when absent.
std::uint64_t counter(const std::string& text, std::string_view key) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        auto words = split(line, ' ');
        if (words.size() == 2 && words[0] == key)
            return std::strtoull(words[1].c_str(), nullptr, 10);
    }
    return 0;
}

} // namespace

std::optional<Root> prepare(std::string& why) {
    auto mounts = cgroup_mounts();
    std::string unified_why;
    for (const auto& m : mounts) {
        if (m.type != "cgroup2")
            continue;
        if (auto root = prepare_unified(m, unified_why))
            return root;
    }
    std::string v1_why;
    if (auto root = prepare_v1(mounts, v1_why))
        return root;
    why = unified_why.empty() ? v1_why : unified_why + "; " + v1_why;
    if (why.empty())
        why = "no cgroup hierarchy is mounted";
    return std::nullopt;
}

void release(const Root& root) {
    for (const auto& folder : root.folders)
        rmdir(folder.c_str());
}

JobCgroup::JobCgroup(const Root& root, const std::string& name,
                     std::uint64_t memory_bytes, std::uint64_t processes)
    : unified_(root.unified) {
    try {
        for (const auto& base : root.folders) {
            auto folder = base / name;
            rmdir(folder.c_str()); // a leftover of a killed node
            if (mkdir(folder.c_str(), 0755) != 0)
                throw std::system_error(errno, std::system_category(),
                                        "cannot create " + folder.string());
            folders_.push_back(folder);
        }
        auto set = [](const fs::path& file, std::uint64_t value) {
            if (value > 0)
                write_control(file, std::to_string(value));
        };
        if (unified_) {
            const auto& f = folders_[0];
            set(f / "memory.max", memory_bytes);
            if (memory_bytes > 0 && fs::exists(f / "memory.swap.max"))
                write_control(f / "memory.swap.max", "0");
            set(f / "pids.max", processes);
        } else {
            set(folders_[0] / "memory.limit_in_bytes", memory_bytes);
            // Swap counts too when the kernel accounts for it.
            if (fs::exists(folders_[0] / "memory.memsw.limit_in_bytes"))
                set(folders_[0] / "memory.memsw.limit_in_bytes", memory_bytes);
            set(folders_[1] / "pids.max", processes);
        }

        for (const auto& f : folders_) {
            int fd = open_high(f / "cgroup.procs", O_WRONLY);
            if (fd < 0)
                throw std::system_error(errno, std::system_category(),
                                        "cannot open " + f.string() +
                                            "/cgroup.procs");
            join_fds_.push_back(fd);
        }
        if (unified_)
            kill_fd_ = open_high(folders_[0] / "cgroup.kill", O_WRONLY);
        if (kill_fd_ < 0)
            members_fd_ = open_high(folders_.back() / "cgroup.procs", O_RDONLY);
    } catch (...) {
        remove();
        throw;
    }
}

JobCgroup::~JobCgroup() {
    remove();
}

bool JobCgroup::memory_exhausted() const {
    if (folders_.empty())
        return false;
    auto file = unified_ ? "memory.events" : "memory.oom_control";
    return counter(read_file(folders_[0] / file), "oom_kill") > 0;
}

std::string JobCgroup::remove() {
    if (removed_)
        return {};
    removed_ = true;
    for (int fd : join_fds_)
        close(fd);
    join_fds_.clear();
    for (int* fd : {&kill_fd_, &members_fd_}) {
        if (*fd >= 0)
            close(std::exchange(*fd, -1));
    }
    std::string why;
    for (const auto& f : folders_) {
        if (rmdir(f.c_str()) != 0 && errno != ENOENT && why.empty())
            why = "cannot remove " + f.string() + ": " +
                  std::system_category().message(errno);
    }
    return why;
}

// Reads "pid\npid\n..." from the start of `fd` and kills each; returns
// how many it found. No allocation: this runs in the shepherd.
static int kill_listed(int fd) {
    if (lseek(fd, 0, SEEK_SET) != 0)
        return 0;
    std::array<char, 512> chunk;
    int found = 0;
    pid_t pid = 0;
    bool in_pid = false;
    for (;;) {
        const ssize_t n = read(fd, chunk.data(), chunk.size());
        if (n < 0 && errno == EINTR)
            continue;
        for (ssize_t i = 0; i < n; ++i) {
            char c = chunk[static_cast<std::size_t>(i)];
            if (c >= '0' && c <= '9') {
                pid = pid * 10 + (c - '0');
                in_pid = true;
            } else if (in_pid) {
                kill(pid, SIGKILL);
                ++found;
                pid = 0;
                in_pid = false;
            }
        }
        if (n <= 0)
            break;
    }
    if (in_pid) {
        kill(pid, SIGKILL);
        ++found;
    }
    return found;
}

void kill_members(int kill_fd, int members_fd) {
    if (kill_fd >= 0) {
        (void)!write(kill_fd, "1", 1);
        return;
    }
    if (members_fd < 0)
        return;
    // Killed members stay listed until they have exited: give them a
    // moment between rounds.
    const timespec pause{0, 1000 * 1000};
    for (int round = 0; round < max_kill_rounds; ++round) {
        if (kill_listed(members_fd) == 0)
            return;
        nanosleep(&pause, nullptr);
    }
}

} // namespace cloudnode::platform::cgroup
