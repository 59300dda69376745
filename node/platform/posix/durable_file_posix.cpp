#include "node/platform/durable_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <string>
#include <system_error>

namespace cloudnode::platform {

namespace {

[[noreturn]] void throw_errno(const std::string& what,
                              const std::filesystem::path& path) {
    throw std::system_error(errno, std::generic_category(),
                            what + " " + path.string());
}

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0)
            ::close(fd);
    }
};

void write_all(int fd, std::string_view bytes,
               const std::filesystem::path& path) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw_errno("cannot write", path);
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

void flush_folder(const std::filesystem::path& folder) {
    Fd dir{::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dir.fd < 0)
        throw_errno("cannot open folder", folder);
    if (::fsync(dir.fd) != 0)
        throw_errno("cannot flush folder", folder);
}

std::filesystem::path temporary_path(const std::filesystem::path& p) {
    auto t = p;
    t += temporary_suffix;
    return t;
}

} // namespace

void write_files_durably(std::span<const FileWrite> files) {
    // Write and flush each file under its temporary name; on failure
    // remove what was written, so that a full disk is not made fuller.
    std::size_t created = 0;
    try {
        for (const auto& f : files) {
            auto tmp = temporary_path(f.path);
            Fd fd{::open(tmp.c_str(),
                         O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
            if (fd.fd < 0)
                throw_errno("cannot create", tmp);
            ++created;
            write_all(fd.fd, f.bytes, tmp);
            if (::fdatasync(fd.fd) != 0)
                throw_errno("cannot flush", tmp);
        }
    } catch (const std::system_error&) {
        for (std::size_t i = 0; i < created; ++i)
            ::unlink(temporary_path(files[i].path).c_str());
        throw;
    }

    // Rename into place; flush each folder once.
    std::set<std::filesystem::path> folders;
    for (const auto& f : files) {
        auto tmp = temporary_path(f.path);
        if (::rename(tmp.c_str(), f.path.c_str()) != 0)
            throw_errno("cannot rename", tmp);
        folders.insert(f.path.parent_path());
    }
    for (const auto& folder : folders)
        flush_folder(folder);
}

} // namespace cloudnode::platform
