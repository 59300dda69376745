// Job folders on Windows. A folder gets a protected access list that
// lets in only the node's own user and SYSTEM, inherited by everything
// in it. Removal never follows a junction or a symbolic link a job left
// behind: such an entry is removed itself, never what it points to.
#include "node/platform/job_folder.hpp"

#include "node/platform/windows/windows_text.hpp"

#include <sddl.h>

#include <random>

namespace cloudnode::platform {
namespace {

namespace fs = std::filesystem;
using windows::Handle;
using windows::narrow;
using windows::widen;

constexpr int max_folder_name_tries = 100;
constexpr std::size_t folder_suffix_chars = 6;

std::wstring windows_folder() {
    wchar_t buffer[MAX_PATH];
    const UINT n = GetSystemWindowsDirectoryW(buffer, MAX_PATH);
    if (n == 0 || n >= MAX_PATH)
        return L"C:\\Windows";
    return {buffer, n};
}

// Where a job's programs are found: Windows' own folders only.
std::vector<std::wstring> search_folders() {
    const std::wstring root = windows_folder();
    return {root + L"\\System32", root, root + L"\\System32\\Wbem"};
}

// "D:P(A;OICI;FA;;;<the node's user>)(A;OICI;FA;;;SY)": full access for
// the node's user and SYSTEM, nothing inherited from the parent.
std::wstring private_access_list(std::string& error) {
    HANDLE token_handle = nullptr;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token_handle)) {
        error = "cannot read the node's token: " +
                windows::error_text(GetLastError());
        return {};
    }
    Handle token(token_handle);
    DWORD size = 0;
    GetTokenInformation(token.get(), TokenUser, nullptr, 0, &size);
    std::string buffer(size, '\0');
    if (!GetTokenInformation(token.get(), TokenUser, buffer.data(), size,
                             &size)) {
        error = "cannot read the node's user: " +
                windows::error_text(GetLastError());
        return {};
    }
    const auto* user = reinterpret_cast<const TOKEN_USER*>(buffer.data());
    wchar_t* sid = nullptr;
    if (!ConvertSidToStringSidW(user->User.Sid, &sid)) {
        error = "cannot name the node's user: " +
                windows::error_text(GetLastError());
        return {};
    }
    std::wstring sddl =
        L"D:P(A;OICI;FA;;;" + std::wstring(sid) + L")(A;OICI;FA;;;SY)";
    LocalFree(sid);
    return sddl;
}

std::string random_suffix() {
    static constexpr char letters[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::random_device random;
    std::uniform_int_distribution<std::size_t> pick(0, sizeof letters - 2);
    std::string suffix;
    for (std::size_t i = 0; i < folder_suffix_chars; ++i)
        suffix += letters[pick(random)];
    return suffix;
}

// The \\?\ form, so that a deep tree a job made can still be removed.
std::wstring long_form(const fs::path& path) {
    const std::wstring absolute = fs::absolute(path).native();
    if (absolute.starts_with(L"\\\\"))
        return absolute;
    return L"\\\\?\\" + absolute;
}

// Removes everything under `folder`, then the folder; goes on past a
// failure so as to remove as much as it can. Returns the first error.
DWORD remove_tree(const std::wstring& folder) {
    DWORD first_error = ERROR_SUCCESS;
    auto note = [&](BOOL ok) {
        if (!ok && first_error == ERROR_SUCCESS)
            first_error = GetLastError();
    };

    WIN32_FIND_DATAW entry;
    HANDLE find = FindFirstFileExW((folder + L"\\*").c_str(), FindExInfoBasic,
                                   &entry, FindExSearchNameMatch, nullptr, 0);
    if (find != INVALID_HANDLE_VALUE) {
        do {
            const std::wstring name = entry.cFileName;
            if (name == L"." || name == L"..")
                continue;
            const std::wstring path = folder + L"\\" + name;
            const DWORD attributes = entry.dwFileAttributes;
            if (attributes & FILE_ATTRIBUTE_READONLY)
                SetFileAttributesW(path.c_str(),
                                   attributes & ~FILE_ATTRIBUTE_READONLY);
            const bool link = attributes & FILE_ATTRIBUTE_REPARSE_POINT;
            if (!(attributes & FILE_ATTRIBUTE_DIRECTORY)) {
                note(DeleteFileW(path.c_str()));
            } else if (link) {
                note(RemoveDirectoryW(path.c_str())); // the link alone
            } else {
                const DWORD error = remove_tree(path);
                if (error != ERROR_SUCCESS && first_error == ERROR_SUCCESS)
                    first_error = error;
            }
        } while (FindNextFileW(find, &entry));
        FindClose(find);
    }
    note(RemoveDirectoryW(folder.c_str()));
    return first_error;
}

} // namespace

fs::path make_job_folder(const fs::path& work_root, std::string_view name,
                         std::string& error) {
    const std::wstring sddl = private_access_list(error);
    if (sddl.empty())
        return {};
    PSECURITY_DESCRIPTOR descriptor = nullptr;
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.c_str(), SDDL_REVISION_1, &descriptor, nullptr)) {
        error = "cannot make the working folder's access list: " +
                windows::error_text(GetLastError());
        return {};
    }
    SECURITY_ATTRIBUTES attributes{sizeof attributes, descriptor, FALSE};

    fs::path folder;
    DWORD code = ERROR_ALREADY_EXISTS;
    for (int i = 0; i < max_folder_name_tries && code == ERROR_ALREADY_EXISTS;
         ++i) {
        folder = work_root / widen(std::string(name) + "-" + random_suffix());
        code = CreateDirectoryW(folder.c_str(), &attributes) ? ERROR_SUCCESS
                                                             : GetLastError();
    }
    LocalFree(descriptor);
    if (code != ERROR_SUCCESS) {
        error = "cannot create a working folder under " +
                windows::utf8(work_root) + ": " + windows::error_text(code);
        return {};
    }
    // Backslashes only: the script's path goes on cmd.exe's line.
    return folder.make_preferred();
}

bool write_job_script(const fs::path& path, std::string_view script,
                      std::string& error) {
    Handle file(CreateFileW(path.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_NEW,
                            FILE_ATTRIBUTE_NORMAL, nullptr));
    bool ok = file.valid();
    while (ok && !script.empty()) {
        DWORD written = 0;
        const auto chunk = static_cast<DWORD>(
            script.size() < (1u << 30) ? script.size() : (1u << 30));
        ok = WriteFile(file.get(), script.data(), chunk, &written, nullptr);
        script.remove_prefix(written);
    }
    const DWORD code = GetLastError();
    if (file.valid() && !CloseHandle(file.release()))
        ok = false;
    if (!ok)
        error = "cannot write the script: " + windows::error_text(code);
    return ok;
}

// XXX: runs on the event loop; a job that leaves a huge tree stalls
// every session while it is removed.
std::string remove_job_folder(const fs::path& folder) {
    const DWORD code = remove_tree(long_form(folder));
    if (code == ERROR_SUCCESS || code == ERROR_FILE_NOT_FOUND ||
        code == ERROR_PATH_NOT_FOUND)
        return {};
    return "working folder " + windows::utf8(folder) +
           " not removed: " + windows::error_text(code);
}

std::vector<std::string> job_environment(const fs::path& folder,
                                         std::string_view job_id) {
    const std::string root = narrow(windows_folder());
    std::string path;
    for (const auto& f : search_folders())
        path += (path.empty() ? "" : ";") + narrow(f);
    const std::string home = windows::utf8(folder);
    // SystemRoot: without it, Winsock and Python's os.urandom fail.
    return {
        "PATH=" + path,
        "PATHEXT=.COM;.EXE;.BAT;.CMD",
        "SystemRoot=" + root,
        "windir=" + root,
        "ComSpec=" + root + "\\System32\\cmd.exe",
        "USERPROFILE=" + home,
        "HOME=" + home,
        "TEMP=" + home,
        "TMP=" + home,
        "CLOUDPROTO_JOB_ID=" + std::string(job_id),
    };
}

// CreateProcessW would search the node's own folders first; the job's
// search path alone is used here, with ".exe" added to a bare name.
std::string resolve_program(const std::string& name) {
    if (name.find_first_of("/\\:") != std::string::npos)
        return name;
    const std::wstring wide = widen(name);
    const std::wstring file =
        wide.find(L'.') == std::wstring::npos ? wide + L".exe" : wide;
    for (const auto& folder : search_folders()) {
        const std::wstring candidate = folder + L"\\" + file;
        const DWORD attributes = GetFileAttributesW(candidate.c_str());
        if (attributes != INVALID_FILE_ATTRIBUTES &&
            !(attributes & FILE_ATTRIBUTE_DIRECTORY))
            return narrow(candidate);
    }
    return name;
}

} // namespace cloudnode::platform
