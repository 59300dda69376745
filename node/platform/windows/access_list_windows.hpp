// The access lists behind private_files_windows.cpp, apart from the
// files they guard so that tests can check them in memory.
#pragma once

#include <windows.h>

#include <string>

namespace cloudnode::platform::windows {

// The SDDL of a private folder's access list: full access for the
// node's user (a SID's text, "S-1-5-21-..."), SYSTEM and Administrators,
// inherited by what is made inside, nothing inherited from above.
std::wstring private_folder_sddl(const std::wstring& node_user);

// Whether `dacl` lets anyone beyond `node_user`, SYSTEM and
// Administrators read what it guards; a null list lets everyone.
bool lets_others_read(const ACL* dacl, PSID node_user);

} // namespace cloudnode::platform::windows
