#include "node/platform/private_files.hpp"

#include "node/platform/windows/access_list_windows.hpp"
#include "node/platform/windows/windows_text.hpp"

#include <aclapi.h>
#include <sddl.h>

#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace cloudnode::platform {
namespace {

namespace fs = std::filesystem;
using windows::Handle;

// Frees what the security functions allocated with LocalAlloc.
struct LocalFreer {
    void operator()(void* p) const { LocalFree(p); }
};
using LocalMemory = std::unique_ptr<void, LocalFreer>;

[[noreturn]] void fail(const char* what, const fs::path& path, DWORD code) {
    throw fs::filesystem_error(
        what, path,
        std::error_code(static_cast<int>(code), std::system_category()));
}

// The node's own user, as its process token says: a TOKEN_USER whose
// SID points inside the buffer.
std::vector<unsigned char> own_user() {
    HANDLE raw = nullptr;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &raw))
        return {};
    const Handle token(raw);
    DWORD size = 0;
    GetTokenInformation(token.get(), TokenUser, nullptr, 0, &size);
    std::vector<unsigned char> buffer(size);
    if (size == 0 || !GetTokenInformation(token.get(), TokenUser, buffer.data(),
                                          size, &size))
        return {};
    return buffer;
}

PSID sid_of(std::vector<unsigned char>& user) {
    return reinterpret_cast<TOKEN_USER*>(user.data())->User.Sid;
}

// The node's user, SYSTEM and Administrators: who may hold its secrets.
bool is_trusted(PSID sid, PSID node_user) {
    return (node_user != nullptr && EqualSid(sid, node_user)) ||
           IsWellKnownSid(sid, WinLocalSystemSid) ||
           IsWellKnownSid(sid, WinBuiltinAdministratorsSid) ||
           IsWellKnownSid(sid, WinCreatorOwnerSid);
}

} // namespace

namespace windows {

std::wstring private_folder_sddl(const std::wstring& node_user) {
    // P: nothing inherited from the folders above; OICI: what is made
    // inside inherits it; FA: full access.
    return L"D:P(A;OICI;FA;;;" + node_user +
           L")(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";
}

bool lets_others_read(const ACL* dacl, PSID node_user) {
    if (dacl == nullptr)
        return true; // no access list at all: everyone may
    constexpr ACCESS_MASK reading = FILE_READ_DATA | GENERIC_READ | GENERIC_ALL;
    for (DWORD i = 0; i < dacl->AceCount; ++i) {
        void* entry = nullptr;
        if (!GetAce(const_cast<ACL*>(dacl), i, &entry))
            continue;
        const auto* header = static_cast<const ACE_HEADER*>(entry);
        // Only the entries that grant, and that apply to the file itself.
        if (header->AceType != ACCESS_ALLOWED_ACE_TYPE ||
            (header->AceFlags & INHERIT_ONLY_ACE) != 0)
            continue;
        auto* allowed = static_cast<ACCESS_ALLOWED_ACE*>(entry);
        if ((allowed->Mask & reading) == 0)
            continue;
        if (!is_trusted(reinterpret_cast<PSID>(&allowed->SidStart), node_user))
            return true;
    }
    return false;
}

} // namespace windows

void make_private_folder(const fs::path& folder) {
    fs::create_directories(folder);
    auto user = own_user();
    wchar_t* user_text = nullptr;
    if (user.empty() || !ConvertSidToStringSidW(sid_of(user), &user_text))
        fail("cannot tell the node's user", folder, GetLastError());
    const LocalMemory user_text_owner(user_text);

    const std::wstring sddl = windows::private_folder_sddl(user_text);
    PSECURITY_DESCRIPTOR descriptor = nullptr;
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.c_str(), SDDL_REVISION_1, &descriptor, nullptr))
        fail("cannot build an access list", folder, GetLastError());
    const LocalMemory descriptor_owner(descriptor);
    BOOL present = FALSE;
    BOOL defaulted = FALSE;
    PACL dacl = nullptr;
    if (!GetSecurityDescriptorDacl(descriptor, &present, &dacl, &defaulted))
        fail("cannot build an access list", folder, GetLastError());

    std::wstring path = folder.wstring();
    const DWORD error = SetNamedSecurityInfoW(
        path.data(), SE_FILE_OBJECT,
        DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
        nullptr, nullptr, dacl, nullptr);
    if (error != ERROR_SUCCESS)
        fail("cannot make the folder private", folder, error);
}

void let_jobs_cross(const fs::path&) {}

bool readable_by_others(const fs::path& file) {
    PACL dacl = nullptr;
    PSECURITY_DESCRIPTOR descriptor = nullptr;
    if (GetNamedSecurityInfoW(file.c_str(), SE_FILE_OBJECT,
                              DACL_SECURITY_INFORMATION, nullptr, nullptr,
                              &dacl, nullptr, &descriptor) != ERROR_SUCCESS)
        return false;
    const LocalMemory descriptor_owner(descriptor);
    auto user = own_user();
    return windows::lets_others_read(dacl,
                                     user.empty() ? nullptr : sid_of(user));
}

} // namespace cloudnode::platform
