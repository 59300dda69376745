#include "node/platform/windows/command_line_windows.hpp"

#include <algorithm>
#include <cctype>

namespace cloudnode::platform::windows {
namespace {

// The switches a cmd.exe line always gets, before /c.
constexpr std::string_view cmd_switches[] = {"/d", "/v:off", "/s"};

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// The program as its own first word, with Windows' separators: cmd.exe
// reads "C:/Windows/System32/cmd.exe" as switches ("/c" is in it).
std::string program_word(std::string program) {
    std::replace(program.begin(), program.end(), '/', '\\');
    return quote_for_c_runtime(program);
}

bool is_control(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 && c != '\t';
}

// A switch of cmd.exe's own: "/d", "/v:off", "/u"; never a quote or a
// space in it.
bool is_plain_switch(std::string_view arg) {
    if (arg.size() < 2 || arg.front() != '/')
        return false;
    return std::all_of(arg.begin() + 1, arg.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == ':';
    });
}

std::string cmd_line(const std::vector<std::string>& argv, std::string& error) {
    std::string line = program_word(argv.front());
    std::vector<std::string> present;
    std::size_t i = 1;
    for (; i < argv.size() && lower(argv[i]) != "/c"; ++i) {
        if (!is_plain_switch(argv[i])) {
            error = "cmd.exe: '" + argv[i] + "' before /c is not a switch";
            return {};
        }
        present.push_back(lower(argv[i]));
        line += ' ' + argv[i];
    }
    if (i == argv.size() || i + 1 == argv.size()) {
        error = "cmd.exe: no command after /c";
        return {};
    }
    for (auto wanted : cmd_switches) {
        if (std::find(present.begin(), present.end(), wanted) == present.end())
            line += ' ' + std::string(wanted);
    }

    std::string command;
    for (++i; i < argv.size(); ++i) {
        const std::string quoted = quote_for_cmd(argv[i], error);
        if (quoted.empty())
            return {};
        command += (command.empty() ? "" : " ") + quoted;
    }
    return line + " /c \"" + command + '"';
}

} // namespace

bool is_cmd(std::string_view program) {
    const std::size_t slash = program.find_last_of("/\\:");
    const std::string name = lower(
        slash == std::string_view::npos ? program : program.substr(slash + 1));
    return name == "cmd.exe" || name == "cmd";
}

std::string quote_for_c_runtime(std::string_view arg) {
    if (!arg.empty() && arg.find_first_of(" \t\n\v\"") == std::string::npos)
        return std::string(arg);
    std::string out = "\"";
    std::size_t backslashes = 0;
    for (char c : arg) {
        if (c == '\\') {
            ++backslashes;
            continue;
        }
        // Backslashes count double only before a quote.
        out.append(c == '"' ? 2 * backslashes + 1 : backslashes, '\\');
        backslashes = 0;
        out += c;
    }
    out.append(2 * backslashes, '\\'); // before the closing quote
    out += '"';
    return out;
}

std::string quote_for_cmd(std::string_view arg, std::string& error) {
    if (arg.find('"') != std::string_view::npos) {
        error = "an argument holds '\"', which cmd.exe cannot pass to a "
                "Batch script as data";
        return {};
    }
    if (arg.find('%') != std::string_view::npos) {
        error = "an argument holds '%', which cmd.exe could expand";
        return {};
    }
    if (std::any_of(arg.begin(), arg.end(), is_control)) {
        error = "an argument holds a line end or another control "
                "character, which cmd.exe cannot pass as data";
        return {};
    }
    return '"' + std::string(arg) + '"';
}

std::string command_line(const std::vector<std::string>& argv,
                         std::string& error) {
    if (argv.empty()) {
        error = "empty command";
        return {};
    }
    for (const auto& arg : argv) {
        if (arg.find('\0') != std::string::npos) {
            error = "an argument holds a NUL, which no program can receive";
            return {};
        }
    }
    if (is_cmd(argv.front()))
        return cmd_line(argv, error);
    std::string line = program_word(argv.front());
    for (std::size_t i = 1; i < argv.size(); ++i)
        line += ' ' + quote_for_c_runtime(argv[i]);
    return line;
}

} // namespace cloudnode::platform::windows
