#include "node/platform/private_files.hpp"

namespace cloudnode::platform {

namespace fs = std::filesystem;

void make_private_folder(const fs::path& folder) {
    fs::create_directories(folder);
    fs::permissions(folder, fs::perms::owner_all);
}

void let_jobs_cross(const fs::path& folder) {
    fs::permissions(folder, fs::perms::others_exec | fs::perms::group_exec,
                    fs::perm_options::add);
}

bool readable_by_others(const fs::path& file) {
    std::error_code ec;
    const auto p = fs::status(file, ec).permissions();
    return !ec && (p & (fs::perms::group_read | fs::perms::others_read)) !=
                      fs::perms::none;
}

} // namespace cloudnode::platform
