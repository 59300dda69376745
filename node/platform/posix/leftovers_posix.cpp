// Runs in forked children only: system calls, no allocation, no lock
// (see leftovers_posix.hpp).
#include "node/platform/posix/leftovers_posix.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>

#include <fcntl.h>
#include <grp.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cloudnode::platform::leftovers {

namespace {

// Where any uid may leave files (world-writable, sticky).
constexpr const char* shared_folders[] = {"/tmp", "/var/tmp", "/dev/shm",
                                          "/dev/mqueue", "/run/lock"};

// A job can make more than this; what is past it stays.
constexpr int max_depth = 32;
constexpr long max_entries = 100'000;

// The System V IPC objects listed in /proc/sysvipc, the id second on
// each line after a header.
enum class Ipc { msg, sem, shm };

struct Dirent64 {
    std::uint64_t ino;
    std::int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[1];
};

bool is_dot(const char* name) {
    return name[0] == '.' &&
           (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

long remove_entry(int parent, const char* name, dev_t device, int depth,
                  long& budget);

// Removes what the folder open as `dir` holds; `owner_only`: only what
// `uid` owns. Reads again until a pass removes nothing, since entries
// removed while reading may hide others. Returns how many went.
long empty_folder(int dir, dev_t device, int depth, long& budget,
                  bool owner_only, uid_t uid) {
    alignas(Dirent64) char buffer[2048];
    long total = 0;
    for (;;) {
        long removed = 0;
        if (lseek(dir, 0, SEEK_SET) != 0)
            return total;
        for (;;) {
            const long n = syscall(SYS_getdents64, dir, buffer, sizeof buffer);
            if (n <= 0)
                break;
            for (long at = 0; at < n && budget > 0;) {
                const auto* entry = reinterpret_cast<const Dirent64*>(buffer +
                                                                      at);
                at += entry->reclen;
                if (is_dot(entry->name))
                    continue;
                struct stat st {};
                if (owner_only &&
                    (fstatat(dir, entry->name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                     st.st_uid != uid))
                    continue;
                removed += remove_entry(dir, entry->name, device, depth,
                                        budget);
            }
        }
        total += removed;
        if (removed == 0 || budget <= 0)
            return total;
    }
}

// Removes `name` in `parent`, a folder with what it holds. Returns 1
// when it went.
long remove_entry(int parent, const char* name, dev_t device, int depth,
                  long& budget) {
    --budget;
    struct stat st {};
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(parent, name, 0) == 0 ? 1 : 0;
    if (st.st_dev != device || depth >= max_depth)
        return 0;

    // The job may have taken its own rights away; a link planted here
    // since the fstatat could only lead to what the uid may change.
    fchmodat(parent, name, S_IRWXU, 0);
    const int dir = openat(parent, name,
                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir >= 0) {
        empty_folder(dir, device, depth + 1, budget, false, 0);
        close(dir);
    }
    return unlinkat(parent, name, AT_REMOVEDIR) == 0 ? 1 : 0;
}

void remove_files(uid_t uid) {
    long budget = max_entries;
    for (const char* path : shared_folders) {
        const int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
            continue;
        struct stat st {};
        if (fstat(dir, &st) == 0)
            empty_folder(dir, st.st_dev, 0, budget, true, uid);
        close(dir);
    }
}

void remove_ipc(Ipc kind, int id) {
    switch (kind) {
    case Ipc::msg:
        msgctl(id, IPC_RMID, nullptr);
        break;
    case Ipc::sem:
        semctl(id, 0, IPC_RMID);
        break;
    case Ipc::shm:
        shmctl(id, IPC_RMID, nullptr);
        break;
    }
}

// Tries to remove every object listed: the kernel lets the uid remove
// its own only.
void remove_ipc_objects(const char* listing, Ipc kind) {
    const int fd = open(listing, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char chunk[1024];
    int line = 0;
    int field = -1; // on this line, from 0
    bool in_field = false;
    bool number = true;
    long id = 0;
    for (;;) {
        const ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; ++i) {
            const char c = chunk[i];
            if (c == '\n' || c == ' ' || c == '\t') {
                if (in_field && field == 1 && line > 0 && number)
                    remove_ipc(kind, static_cast<int>(id));
                in_field = false;
                if (c == '\n') {
                    ++line;
                    field = -1;
                }
                continue;
            }
            if (!in_field) {
                in_field = true;
                ++field;
                number = true;
                id = 0;
            }
            if (c >= '0' && c <= '9')
                id = id * 10 + (c - '0');
            else
                number = false;
        }
    }
    close(fd);
}

} // namespace

void remove(uid_t uid, gid_t gid) {
    const pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
            setresuid(uid, uid, uid) != 0)
            _exit(1);
        remove_files(uid);
        remove_ipc_objects("/proc/sysvipc/msg", Ipc::msg);
        remove_ipc_objects("/proc/sysvipc/sem", Ipc::sem);
        remove_ipc_objects("/proc/sysvipc/shm", Ipc::shm);
        _exit(0);
    }
    if (pid > 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

} // namespace cloudnode::platform::leftovers
