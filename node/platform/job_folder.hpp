// A job's working folder, the script in it, and what the platform gives
// a job to start from: its environment and where its program is found.
// Each platform has its source beside this header
// (posix/job_folder_posix.cpp, windows/job_folder_windows.cpp), so that
// the executor holds no platform code.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace cloudnode::platform {

// Makes a fresh folder under `work_root` that only the node's own user
// may enter, named `name` and a random suffix. Returns an empty path and
// sets `error` on failure.
std::filesystem::path make_job_folder(const std::filesystem::path& work_root,
                                      std::string_view name,
                                      std::string& error);

// Writes the script as a new file, never through a name that is already
// there, executable where that means something. Returns false and sets
// `error` on failure.
bool write_job_script(const std::filesystem::path& path,
                      std::string_view script, std::string& error);

// Removes the folder whatever the job did to its permissions. Returns an
// empty string, or why the folder is still there.
std::string remove_job_folder(const std::filesystem::path& folder);

// The whole environment a job gets, as NAME=value entries: a fixed
// search path, its folder as home and temporary folder, and its id in
// CLOUDPROTO_JOB_ID.
std::vector<std::string> job_environment(const std::filesystem::path& folder,
                                         std::string_view job_id);

// A bare program name looked up in the job's search path; a name with a
// folder in it, or one not found, comes back unchanged (the start then
// fails and says why).
std::string resolve_program(const std::string& name);

} // namespace cloudnode::platform
