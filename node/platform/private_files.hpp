// The node's own folders and secrets, kept from other users: the spool,
// outbox and work folders only the node's user may enter, and a check of
// the secrets an operator put in place (key, configuration, password).
// Each platform has its source beside this header
// (posix/private_files_posix.cpp, windows/private_files_windows.cpp).
#pragma once

#include <filesystem>

namespace cloudnode::platform {

// Creates `folder` and its parents if missing and leaves it to the
// node's user alone; throws std::filesystem::filesystem_error when it
// cannot. POSIX: mode 0700. Windows: a protected access list that only
// the node's user, SYSTEM and Administrators are on, inherited by all
// that is made inside.
void make_private_folder(const std::filesystem::path& folder);

// Lets jobs that run as other users cross `folder`, a private folder,
// without listing it: the work folder, through which slot uids reach
// their own job folders. POSIX: adds the execute bits. Windows: nothing,
// jobs run as the node's user there.
void let_jobs_cross(const std::filesystem::path& folder);

// Whether users other than the node's may read `file`. POSIX: any group
// or others read bit. Windows: an entry of its access list that lets
// anyone beyond the node's user, SYSTEM and Administrators read it.
// False when it cannot tell (the file is missing, say).
bool readable_by_others(const std::filesystem::path& file);

} // namespace cloudnode::platform
