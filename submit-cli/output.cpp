#include "output.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace cloudsubmit {

namespace {

// The last octet written to stderr was not a newline: the job's stderr
// left a line open.
bool stderr_line_open = false;

} // namespace

std::string printable(std::string_view node_text) {
    std::string out;
    out.reserve(node_text.size());
    for (unsigned char c : node_text) {
        if (c >= 0x20 && c < 0x7f)
            out += static_cast<char>(c);
        else
            out += fmt::format("\\x{:02x}", c);
    }
    return out;
}

void write_job_output(std::string_view out, std::string_view err) {
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    std::fwrite(err.data(), 1, err.size(), stderr);
    std::fflush(stderr);
    if (!err.empty())
        stderr_line_open = err.back() != '\n';
}

void write_tool_line(std::string_view text) {
    fmt::print(stderr, "{}cloud-submit: {}\n", stderr_line_open ? "\n" : "",
               text);
    stderr_line_open = false;
}

} // namespace cloudsubmit
