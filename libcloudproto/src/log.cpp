#include "cloudproto/log.hpp"

#include "cloudproto/job_report.hpp"

#include <atomic>
#include <cstdio>

namespace cloudproto::log {

namespace {

std::atomic<Level> current_level{Level::info};

constexpr std::string_view level_names[] = {"trace", "debug", "info",
                                            "warn", "error"};

} // namespace

void set_level(Level l) { current_level = l; }

Level level() { return current_level; }

bool parse_level(std::string_view name, Level& out) {
    for (int i = 0; i < 5; ++i) {
        if (level_names[i] == name) {
            out = static_cast<Level>(i);
            return true;
        }
    }
    return false;
}

void write(Level l, std::string_view id, std::string_view component,
           std::string_view event, std::string_view fields) {
    std::string line = fmt::format(
        "{} {} {} {} {}", format_timestamp(Clock::now()),
        level_names[static_cast<int>(l)], id.empty() ? "-" : id, component,
        event);
    if (!fields.empty()) {
        line += ' ';
        line += fields;
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
    // Windows' C runtime buffers stderr when it is a file or a pipe.
    std::fflush(stderr);
}

std::string value(std::string_view bytes, std::size_t max_bytes) {
    bool quote = bytes.empty();
    std::string out;
    std::size_t shown = bytes.size() < max_bytes ? bytes.size() : max_bytes;
    for (std::size_t i = 0; i < shown; ++i) {
        auto c = static_cast<unsigned char>(bytes[i]);
        if (c == ' ' || c == '=') {
            quote = true;
            out += static_cast<char>(c);
        } else if (c == '"' || c == '\\') {
            quote = true;
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            out += fmt::format("\\x{:02x}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    if (shown < bytes.size())
        out += fmt::format("...(+{})", bytes.size() - shown);
    return quote ? '"' + out + '"' : out;
}

} // namespace cloudproto::log
