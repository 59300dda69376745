#include "node/platform/posix/slot_uids_posix.hpp"

#include "node/platform/containment.hpp"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cloudnode::platform::slot_uids {

namespace {

constexpr const char* key = "containment.first_uid";

// A node restarted at once after a crash may find its last jobs' last
// processes still dying (their shepherds sweep them as the node goes):
// the scan is tried again for this long before the node gives up.
constexpr std::chrono::milliseconds process_scan_patience{3000};
constexpr std::chrono::milliseconds process_scan_pause{100};

std::string range_text(uid_t first, std::size_t count) {
    return std::to_string(first) + " to " +
           std::to_string(first + count - 1);
}

std::string errno_text(int error) {
    return std::system_category().message(error);
}

bool within(unsigned long id, uid_t first, std::size_t count) {
    return id >= first && id - first < count;
}

// Opens the lock file, making its folder if needed; never follows a
// link planted in their place.
int open_lock_file() {
    if (mkdir(lock_folder, 0755) != 0 && errno != EEXIST)
        throw std::runtime_error(std::string("cannot create ") + lock_folder +
                                 ": " + errno_text(errno));
    const int fd = open(lock_file,
                        O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        throw std::runtime_error(std::string("cannot open ") + lock_file +
                                 ": " + errno_text(errno));
    return fd;
}

void check_not_in_databases(uid_t first, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
        const uid_t id = static_cast<uid_t>(first + i);
        if (const passwd* user = getpwuid(id))
            throw SettingsError(std::string(key) + ": uid " +
                                std::to_string(id) + " is user " +
                                user->pw_name +
                                "'s; the slots' uids must be nobody's");
        if (const group* g = getgrgid(static_cast<gid_t>(id)))
            throw SettingsError(std::string(key) + ": gid " +
                                std::to_string(id) + " is group " +
                                g->gr_name +
                                "'s; the slots' gids must be nobody's");
    }
}

// The first live pid whose real, effective, saved or file system uid
// or gid is in the range; 0 when none. Zombies do not count.
pid_t find_process_of(uid_t first, std::size_t count) {
    DIR* proc = opendir("/proc");
    if (proc == nullptr)
        return 0;
    pid_t found = 0;
    while (const dirent* entry = readdir(proc)) {
        const std::string name = entry->d_name;
        if (name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        std::ifstream status("/proc/" + name + "/status");
        pid_t candidate = 0;
        for (std::string line; std::getline(status, line);) {
            const bool dead = line.rfind("State:\t", 0) == 0 &&
                              line.size() > 7 &&
                              (line[7] == 'Z' || line[7] == 'X');
            if (dead)
                break;
            if (line.rfind("Uid:", 0) != 0 && line.rfind("Gid:", 0) != 0)
                continue;
            const char* at = line.c_str() + 4;
            for (int i = 0; i < 4; ++i) {
                char* end = nullptr;
                const unsigned long id = std::strtoul(at, &end, 10);
                if (end == at)
                    break;
                if (within(id, first, count))
                    candidate = static_cast<pid_t>(std::stol(name));
                at = end;
            }
        }
        found = candidate;
        if (found != 0)
            break;
    }
    closedir(proc);
    return found;
}

} // namespace

int claim(uid_t first, std::size_t count) {
    const int fd = open_lock_file();
    struct flock range {};
    range.l_type = F_WRLCK;
    range.l_whence = SEEK_SET;
    range.l_start = static_cast<off_t>(first);
    range.l_len = static_cast<off_t>(count);
    if (fcntl(fd, F_OFD_SETLK, &range) != 0) {
        const int error = errno;
        close(fd);
        if (error == EAGAIN || error == EACCES)
            throw SettingsError(std::string(key) + ": uids " +
                                range_text(first, count) +
                                " are held by another running node (" +
                                lock_file + ")");
        throw std::runtime_error(std::string("cannot lock ") + lock_file +
                                 ": " + errno_text(error));
    }
    try {
        check_not_in_databases(first, count);
        pid_t pid = find_process_of(first, count);
        for (auto waited = std::chrono::milliseconds(0);
             pid != 0 && waited < process_scan_patience;
             waited += process_scan_pause) {
            std::this_thread::sleep_for(process_scan_pause);
            pid = find_process_of(first, count);
        }
        if (pid != 0)
            throw SettingsError(std::string(key) + ": process " +
                                std::to_string(pid) +
                                " runs as one of the uids " +
                                range_text(first, count) +
                                "; the slots' uids must be nobody's");
    } catch (...) {
        close(fd);
        throw;
    }
    return fd;
}

} // namespace cloudnode::platform::slot_uids
