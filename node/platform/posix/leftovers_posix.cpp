// Runs in forked children only: system calls, no allocation, no lock
// (see leftovers_posix.hpp).
#include "node/platform/posix/leftovers_posix.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iterator>

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
static_assert(std::size(shared_folders) <=
              std::size(Snapshot{}.modified));

// A folder's time stamps come from a coarse clock: one changed this
// close to the snapshot may have changed again unseen.
constexpr time_t stamp_margin_seconds = 2;

// A job can make more than this; what is past it stays.
constexpr int max_depth = 32;
constexpr long max_entries = 100'000;

// The System V IPC objects, as /proc/sysvipc lists them: a header,
// then a line of numbers per object, its id second; where its owner's
// and its creator's uids are.
struct IpcListing {
    const char* path;
    int (*remove)(int id);
    int owner_field;
    int creator_field;
};
constexpr IpcListing ipc_listings[] = {
    {"/proc/sysvipc/msg", [](int id) { return msgctl(id, IPC_RMID, nullptr); },
     7, 9},
    {"/proc/sysvipc/sem", [](int id) { return semctl(id, 0, IPC_RMID); }, 4,
     6},
    {"/proc/sysvipc/shm", [](int id) { return shmctl(id, IPC_RMID, nullptr); },
     7, 9},
};
constexpr int max_fields = 20;

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

// Calls `row` with the numbers of each object's line, up to
// max_fields of them, until it returns false.
template <typename Row>
void for_each_object(const IpcListing& listing, Row row) {
    const int fd = open(listing.path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char chunk[1024];
    long fields[max_fields];
    int field = -1; // the number being read on this line, from 0
    bool in_field = false;
    bool header = true;
    bool more = true;
    while (more) {
        const ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && more; ++i) {
            const char c = chunk[i];
            if (c >= '0' && c <= '9') {
                if (!in_field && ++field < max_fields)
                    fields[field] = 0;
                in_field = true;
                if (field < max_fields)
                    fields[field] = fields[field] * 10 + (c - '0');
                continue;
            }
            in_field = false;
            if (c != '\n')
                continue;
            const int count = field + 1 < max_fields ? field + 1 : max_fields;
            if (!header)
                more = row(fields, count);
            header = false;
            field = -1;
        }
    }
    close(fd);
}

// Whether `uid` owns or made an object of the listing.
bool owns_ipc(const IpcListing& listing, uid_t uid) {
    bool found = false;
    for_each_object(listing, [&](const long* fields, int count) {
        const auto is_uid = [&](int field) {
            return field < count && fields[field] == static_cast<long>(uid);
        };
        found = is_uid(listing.owner_field) || is_uid(listing.creator_field);
        return !found;
    });
    return found;
}

bool same_time(const timespec& a, const timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// Whether the folder open as `dir` may hold entries made since the
// snapshot.
bool changed_since(int dir, std::size_t index, const Snapshot& before) {
    struct stat st {};
    if (fstat(dir, &st) != 0)
        return true;
    return !same_time(st.st_mtim, before.modified[index]) ||
           st.st_mtim.tv_sec + stamp_margin_seconds >= before.taken.tv_sec;
}

// Whether `uid` owns an entry at the top of a shared folder changed
// since the snapshot.
bool owns_file(uid_t uid, const Snapshot& before) {
    alignas(Dirent64) char buffer[2048];
    bool found = false;
    for (std::size_t i = 0; i < std::size(shared_folders); ++i) {
        const int dir =
            open(shared_folders[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
            continue;
        if (!changed_since(dir, i, before)) {
            close(dir);
            continue;
        }
        long n;
        while (!found &&
               (n = syscall(SYS_getdents64, dir, buffer, sizeof buffer)) > 0) {
            for (long at = 0; at < n && !found;) {
                const auto* entry = reinterpret_cast<const Dirent64*>(buffer +
                                                                      at);
                at += entry->reclen;
                struct stat st {};
                found = !is_dot(entry->name) &&
                        fstatat(dir, entry->name, &st, AT_SYMLINK_NOFOLLOW) ==
                            0 &&
                        st.st_uid == uid;
            }
        }
        close(dir);
        if (found)
            return true;
    }
    return false;
}

bool anything_left(uid_t uid, const Snapshot& before) {
    if (owns_file(uid, before))
        return true;
    for (const auto& listing : ipc_listings) {
        if (owns_ipc(listing, uid))
            return true;
    }
    return false;
}

// Tries to remove every object listed: the kernel lets the uid remove
// its own only.
void remove_ipc_objects() {
    for (const auto& listing : ipc_listings) {
        for_each_object(listing, [&](const long* fields, int count) {
            if (count > 1)
                listing.remove(static_cast<int>(fields[1]));
            return true;
        });
    }
}

} // namespace

Snapshot snapshot() {
    Snapshot s;
    clock_gettime(CLOCK_REALTIME, &s.taken);
    for (std::size_t i = 0; i < std::size(shared_folders); ++i) {
        struct stat st {};
        if (stat(shared_folders[i], &st) == 0)
            s.modified[i] = st.st_mtim;
    }
    return s;
}

void remove(uid_t uid, gid_t gid, const Snapshot& before) {
    // Looking, as the shepherd, only reads.
    if (!anything_left(uid, before))
        return;
    const pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
            setresuid(uid, uid, uid) != 0)
            _exit(1);
        remove_files(uid);
        remove_ipc_objects();
        _exit(0);
    }
    if (pid > 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

} // namespace cloudnode::platform::leftovers
