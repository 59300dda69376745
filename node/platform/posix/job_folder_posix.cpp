#include "node/platform/job_folder.hpp"

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cloudnode::platform {
namespace {

namespace fs = std::filesystem;

// The search path and locale every job gets.
constexpr std::string_view job_path = "/usr/local/bin:/usr/bin:/bin";
constexpr std::string_view job_lang = "C.UTF-8";

std::string errno_text(int error) {
    return std::system_category().message(error);
}

bool write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// Gives every folder of the tree back its owner's permissions, top
// down, never following a symlink out of it.
void make_removable(const fs::path& folder) {
    std::vector<fs::path> pending{folder};
    while (!pending.empty()) {
        const fs::path dir = std::move(pending.back());
        pending.pop_back();
        ::chmod(dir.c_str(), S_IRWXU);
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end;
             it.increment(ec)) {
            std::error_code type_ec;
            if (it->symlink_status(type_ec).type() == fs::file_type::directory)
                pending.push_back(it->path());
        }
    }
}

} // namespace

// mkdtemp makes it mode 0700.
fs::path make_job_folder(const fs::path& work_root, std::string_view name,
                         std::string& error) {
    std::string path = (work_root / (std::string(name) + "-XXXXXX")).string();
    if (mkdtemp(path.data()) == nullptr) {
        error = "cannot create a working folder under " + work_root.string() +
                ": " + errno_text(errno);
        return {};
    }
    return path;
}

// Executable, so that a runtime may also run a script by its shebang.
bool write_job_script(const fs::path& path, std::string_view script,
                      std::string& error) {
    const int fd =
        open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
             0700);
    bool ok = fd >= 0 && write_all(fd, script);
    const int write_error = errno;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok)
        error = "cannot write the script: " + errno_text(write_error);
    return ok;
}

// XXX: runs on the event loop; a job that leaves a huge tree stalls
// every session while it is removed.
std::string remove_job_folder(const fs::path& folder) {
    std::error_code ec;
    fs::remove_all(folder, ec);
    if (!ec)
        return {};
    make_removable(folder);
    ec.clear();
    fs::remove_all(folder, ec);
    if (!ec)
        return {};
    return "working folder " + folder.string() +
           " not removed: " + ec.message();
}

std::vector<std::string> job_environment(const fs::path& folder,
                                         std::string_view job_id) {
    const std::string home = folder.string();
    return {
        "PATH=" + std::string(job_path),
        "HOME=" + home,
        "TMPDIR=" + home,
        "LANG=" + std::string(job_lang),
        "CLOUDPROTO_JOB_ID=" + std::string(job_id),
    };
}

// execve does no PATH search, so a bare program name is looked up here,
// in the job's own PATH, before the fork.
std::string resolve_program(const std::string& name) {
    if (name.find('/') != std::string::npos)
        return name;
    std::string_view dirs = job_path;
    while (!dirs.empty()) {
        const std::size_t colon = std::min(dirs.find(':'), dirs.size());
        const fs::path candidate = fs::path(dirs.substr(0, colon)) / name;
        std::error_code ec;
        if (fs::is_regular_file(candidate, ec) &&
            access(candidate.c_str(), X_OK) == 0)
            return candidate.string();
        dirs.remove_prefix(std::min(colon + 1, dirs.size()));
    }
    return name;
}

} // namespace cloudnode::platform
