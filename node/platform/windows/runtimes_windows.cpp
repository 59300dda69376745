#include "node/platform/runtimes.hpp"

#include "node/platform/windows/command_line_windows.hpp"
#include "node/platform/windows/windows_text.hpp"

#include <windows.h>

namespace cloudnode::platform {
namespace {

// The Windows folder ("C:\Windows"), as the system reports it.
std::wstring windows_folder() {
    wchar_t buffer[MAX_PATH];
    const UINT n = GetSystemWindowsDirectoryW(buffer, MAX_PATH);
    return n > 0 && n < MAX_PATH ? std::wstring(buffer, n) : L"C:\\Windows";
}

std::wstring system_folder() {
    wchar_t buffer[MAX_PATH];
    const UINT n = GetSystemDirectoryW(buffer, MAX_PATH);
    return n > 0 && n < MAX_PATH ? std::wstring(buffer, n)
                                 : windows_folder() + L"\\System32";
}

bool is_file(const std::wstring& path) {
    const DWORD attributes = GetFileAttributesW(path.c_str());
    return attributes != INVALID_FILE_ATTRIBUTES &&
           !(attributes & FILE_ATTRIBUTE_DIRECTORY);
}

// The py launcher for all users, else python.exe as the node's own
// search path finds it; empty when neither is there.
std::vector<std::string> python_command() {
    const std::wstring launcher = windows_folder() + L"\\py.exe";
    if (is_file(launcher))
        return {windows::narrow(launcher), "-3", "-I", "{script}"};
    wchar_t found[MAX_PATH];
    const DWORD n =
        SearchPathW(nullptr, L"python.exe", nullptr, MAX_PATH, found, nullptr);
    if (n > 0 && n < MAX_PATH)
        return {windows::narrow(std::wstring(found, n)), "-I", "{script}"};
    return {};
}

} // namespace

std::vector<Runtime> default_runtimes() {
    // /d: no AutoRun commands; /c: run the script, then exit with its
    // status. command_line() adds /v:off and /s.
    std::vector<Runtime> runtimes{
        {"batch",
         "bat",
         {windows::narrow(system_folder() + L"\\cmd.exe"), "/d", "/c",
          "{script}"}},
    };
    if (auto python = python_command(); !python.empty())
        runtimes.push_back({"python", "py", std::move(python)});
    return runtimes;
}

std::string argument_problem(const std::vector<std::string>& argv) {
    std::string error;
    windows::command_line(argv, error);
    return error;
}

} // namespace cloudnode::platform
