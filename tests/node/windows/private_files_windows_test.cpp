// Which access lists let others read the node's secrets, checked in
// memory: under Wine, which CI runs, a file's list is only what its Unix
// mode can say.
#include "node/platform/windows/access_list_windows.hpp"

#include <doctest/doctest.h>

#include <aclapi.h>
#include <sddl.h>

#include <cwchar>
#include <memory>
#include <string>

namespace {

using cloudnode::platform::windows::lets_others_read;
using cloudnode::platform::windows::private_folder_sddl;

const std::wstring node_user = L"S-1-5-21-1111-2222-3333-1001";

struct LocalFreer {
    void operator()(void* p) const { LocalFree(p); }
};

// Whether the access list of `sddl` lets others than node_user read.
bool others_read(const std::wstring& sddl) {
    PSECURITY_DESCRIPTOR descriptor = nullptr;
    REQUIRE(ConvertStringSecurityDescriptorToSecurityDescriptorW(
        sddl.c_str(), SDDL_REVISION_1, &descriptor, nullptr));
    std::unique_ptr<void, LocalFreer> owner(descriptor);
    PSID user = nullptr;
    REQUIRE(ConvertStringSidToSidW(node_user.c_str(), &user));
    std::unique_ptr<void, LocalFreer> user_owner(user);
    BOOL present = FALSE;
    BOOL defaulted = FALSE;
    PACL dacl = nullptr;
    REQUIRE(GetSecurityDescriptorDacl(descriptor, &present, &dacl, &defaulted));
    return lets_others_read(present ? dacl : nullptr, user);
}

} // namespace

TEST_CASE("a private folder's access list lets only the node's user, SYSTEM "
          "and Administrators in") {
    CHECK_FALSE(others_read(private_folder_sddl(node_user)));
}

TEST_CASE("an access list that lets anyone else read is told apart") {
    const struct {
        const wchar_t* sddl;
        bool others;
    } rows[] = {
        {L"D:(A;;FR;;;WD)", true},                            // Everyone
        {L"D:(A;;FR;;;BU)", true},                            // Users
        {L"D:(A;;FA;;;SY)(A;;0x1;;;AU)", true},               // read data only
        {L"D:(A;;GR;;;S-1-5-21-1111-2222-3333-1002)", true},  // another user
        {L"D:(A;;FA;;;S-1-5-21-1111-2222-3333-1001)", false}, // the node
        {L"D:(A;;FA;;;SY)(A;;FA;;;BA)", false},
        {L"D:(A;OICIIO;FR;;;WD)", false}, // only for what is made inside
        {L"D:(D;;FR;;;WD)", false},       // a denial
        {L"D:(A;;0x2;;;WD)", false},      // write data, not read
        {L"D:", false},                   // an empty list: nobody
    };
    for (const auto& row : rows) {
        CAPTURE(std::string(row.sddl, row.sddl + std::wcslen(row.sddl)));
        CHECK(others_read(row.sddl) == row.others);
    }
    // No list at all: everyone may.
    CHECK(lets_others_read(nullptr, nullptr));
}
