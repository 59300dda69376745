// The one command line CreateProcessW takes, made from a job's argv so
// that each argument reaches the program whole and as data.
//
// Most programs split their line as the C runtime does
// (CommandLineToArgvW's rules): each argument is quoted when it needs to
// be, with backslashes doubled before a quote.
//
// cmd.exe is different: after /c it runs the rest as a command, where
// & | < > ^ ( ) end or change the command outside quotes and %NAME%
// expands everywhere, and a Batch script then receives each argument as
// it stood on that line, quotes included (%~1 removes them). So for
// cmd.exe every argument is quoted, and the whole command after /c sits
// in one more pair of quotes that /s removes; /d (no AutoRun commands)
// and /v:off (no !NAME! expansion) are added when missing. What no
// quoting can carry is refused: '"' and '%' in an argument, line ends
// and other control characters.
//
// TODO(#6): '%' as data. Following each '%' with an expansion that
// yields nothing ("%cd:~,%") fails under Wine's cmd.exe, the only one CI
// has, and Wine's drops even a lone '%' from a Batch script's %1; until
// a way is proven on both, arguments holding '%' are refused.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cloudnode::platform::windows {

// Whether `program` is cmd.exe, by its file name, case aside.
bool is_cmd(std::string_view program);

// The command line for `argv` (UTF-8; argv[0] the program's path), or an
// empty string with `error` saying which argument cannot be passed.
std::string command_line(const std::vector<std::string>& argv,
                         std::string& error);

// One argument as the C runtime splits it back.
std::string quote_for_c_runtime(std::string_view arg);

// One argument for cmd.exe, or an empty string and `error` set.
std::string quote_for_cmd(std::string_view arg, std::string& error);

} // namespace cloudnode::platform::windows
