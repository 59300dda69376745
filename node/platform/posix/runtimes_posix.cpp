#include "node/platform/runtimes.hpp"

#include <algorithm>

namespace cloudnode::platform {

std::vector<Runtime> default_runtimes() {
    return {
        {"bash", "sh", {"/bin/bash", "{script}"}},
        // -I: no user site folder, no environment variables read.
        {"python", "py", {"/usr/bin/python3", "-I", "{script}"}},
    };
}

std::string argument_problem(const std::vector<std::string>& argv) {
    const bool has_nul =
        std::any_of(argv.begin(), argv.end(), [](const std::string& arg) {
            return arg.find('\0') != std::string::npos;
        });
    return has_nul ? "an argument holds a NUL, which no program can receive"
                   : "";
}

} // namespace cloudnode::platform
