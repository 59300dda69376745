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

// A folder from the environment, or empty.
std::wstring environment_folder(const wchar_t* name) {
    wchar_t buffer[MAX_PATH];
    const DWORD n = GetEnvironmentVariableW(name, buffer, MAX_PATH);
    return n > 0 && n < MAX_PATH ? std::wstring(buffer, n) : std::wstring();
}

// The py launcher, installed for all users or for the node's own, else
// python.exe as the node's search path finds it, unless that is the
// Microsoft Store's stand-in (under WindowsApps), which runs nothing
// but offers to install Python; empty when none is there.
std::vector<std::string> python_command() {
    std::vector<std::wstring> launchers{windows_folder() + L"\\py.exe"};
    if (auto local = environment_folder(L"LOCALAPPDATA"); !local.empty())
        launchers.push_back(local + L"\\Programs\\Python\\Launcher\\py.exe");
    for (const auto& launcher : launchers) {
        if (is_file(launcher))
            return {windows::narrow(launcher), "-3", "-I", "{script}"};
    }
    wchar_t found[MAX_PATH];
    const DWORD n =
        SearchPathW(nullptr, L"python.exe", nullptr, MAX_PATH, found, nullptr);
    if (n == 0 || n >= MAX_PATH)
        return {};
    const std::wstring path(found, n);
    if (path.find(L"\\WindowsApps\\") != std::wstring::npos)
        return {};
    return {windows::narrow(path), "-I", "{script}"};
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
