// Files that survive a crash once written: the promise behind every 2xx
// a node gives. One POSIX and one Windows implementation.
#pragma once

#include <filesystem>
#include <span>
#include <string_view>

namespace cloudnode::platform {

struct FileWrite {
    std::filesystem::path path;
    std::string_view bytes;
};

// Puts every file in place, whole or not at all: each is written under a
// temporary name and flushed, then all are renamed into place, then each
// folder involved is flushed once. Files written together share those
// folder flushes. Throws std::system_error naming the file.
void write_files_durably(std::span<const FileWrite> files);

// Suffix of the temporary names; a node removes leftovers at start-up.
inline constexpr std::string_view temporary_suffix = ".tmp";

} // namespace cloudnode::platform
