// What each platform runs scripts with: the runtimes a node offers when
// its configuration names none, and whether a job's arguments can reach
// a runtime's program unchanged. Each platform has its source beside
// this header (posix/runtimes_posix.cpp, windows/runtimes_windows.cpp).
#pragma once

#include "node/config.hpp"

#include <string>
#include <vector>

namespace cloudnode::platform {

// The runtimes of a configuration without a [runtimes] table. POSIX:
// bash and python (/usr/bin/python3). Windows: batch through cmd.exe,
// and python when an interpreter is found (the py launcher in the
// Windows folder, or python.exe on the node's search path).
std::vector<Runtime> default_runtimes();

// Why the program of `argv` (argv[0] its path) cannot receive every
// argument unchanged on this platform, or an empty string when it can.
// A POSIX argv carries any string without NUL; a Windows command line
// cannot carry everything, above all through cmd.exe.
std::string argument_problem(const std::vector<std::string>& argv);

} // namespace cloudnode::platform
