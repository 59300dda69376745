// Durable files on Windows: each file is written under its temporary
// name and flushed with FlushFileBuffers, then moved into place with
// MoveFileExW(MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH), which
// returns only once the move itself is on disk. That write-through move
// is what stands for POSIX's flush of the folder.
#include "node/platform/durable_file.hpp"

#include "node/platform/windows/windows_text.hpp"

#include <system_error>

namespace cloudnode::platform {

namespace {

using windows::Handle;

[[noreturn]] void throw_last_error(const std::string& what,
                                   const std::filesystem::path& path) {
    const DWORD code = GetLastError();
    throw std::system_error(static_cast<int>(code), std::system_category(),
                            what + " " + windows::utf8(path) + " (" +
                                windows::error_text(code) + ")");
}

// WriteFile takes at most a DWORD's worth at a time.
constexpr std::size_t max_write_bytes = 1u << 30;

void write_all(HANDLE file, std::string_view bytes,
               const std::filesystem::path& path) {
    while (!bytes.empty()) {
        const DWORD chunk = static_cast<DWORD>(
            bytes.size() < max_write_bytes ? bytes.size() : max_write_bytes);
        DWORD written = 0;
        if (!WriteFile(file, bytes.data(), chunk, &written, nullptr))
            throw_last_error("cannot write", path);
        bytes.remove_prefix(written);
    }
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
            const auto tmp = temporary_path(f.path);
            Handle file(CreateFileW(tmp.c_str(), GENERIC_WRITE, 0, nullptr,
                                    CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL,
                                    nullptr));
            if (!file.valid())
                throw_last_error("cannot create", tmp);
            ++created;
            write_all(file.get(), f.bytes, tmp);
            if (!FlushFileBuffers(file.get()))
                throw_last_error("cannot flush", tmp);
        }
    } catch (const std::system_error&) {
        for (std::size_t i = 0; i < created; ++i)
            DeleteFileW(temporary_path(files[i].path).c_str());
        throw;
    }

    // Move into place, each move on disk before the next.
    for (const auto& f : files) {
        const auto tmp = temporary_path(f.path);
        if (!MoveFileExW(tmp.c_str(), f.path.c_str(),
                         MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
            throw_last_error("cannot rename", tmp);
    }
}

} // namespace cloudnode::platform
