#include "node/platform/windows/command_line_windows.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

using namespace cloudnode::platform::windows;

struct Quoted {
    const char* arg;
    const char* line;
};

} // namespace

TEST_CASE("C runtime quoting: what CommandLineToArgvW splits back") {
    const Quoted table[] = {
        {"plain", "plain"},
        {"", "\"\""},
        {"two words", "\"two words\""},
        {"tab\there", "\"tab\there\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"C:\\dir\\", "C:\\dir\\"},
        {"C:\\my dir\\", "\"C:\\my dir\\\\\""},
        {"a\\\\\"b", "\"a\\\\\\\\\\\"b\""},
        {"back\\slash", "back\\slash"},
        {"l'été", "l'été"},
    };
    for (const auto& row : table) {
        CAPTURE(row.arg);
        CHECK(quote_for_c_runtime(row.arg) == row.line);
    }
}

TEST_CASE("cmd.exe quoting: specials stay inside quotes") {
    const Quoted table[] = {
        {"plain", "\"plain\""},     {"", "\"\""},
        {"a & b", "\"a & b\""},     {"x|y<z>w^v(u)!t", "\"x|y<z>w^v(u)!t\""},
        {"a,b;c=d", "\"a,b;c=d\""},
    };
    for (const auto& row : table) {
        CAPTURE(row.arg);
        std::string error;
        CHECK(quote_for_cmd(row.arg, error) == row.line);
        CHECK(error.empty());
    }
}

TEST_CASE("cmd.exe quoting refuses what cannot arrive as data") {
    for (const char* arg :
         {"say \"hi\"", "%PATH%", "100%", "two\nlines", "cr\r", "bell\a"}) {
        CAPTURE(arg);
        std::string error;
        CHECK(quote_for_cmd(arg, error).empty());
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE("a cmd.exe line gets /d /v:off /s and its command in quotes") {
    std::string error;
    CHECK(command_line({"C:\\Windows\\System32\\cmd.exe", "/d", "/c",
                        "C:\\work\\job-1\\job.bat", "a b", "&"},
                       error) ==
          "C:\\Windows\\System32\\cmd.exe /d /v:off /s /c "
          "\"\"C:\\work\\job-1\\job.bat\" \"a b\" \"&\"\"");
    CHECK(error.empty());

    CHECK(command_line({"cmd.exe", "/D", "/S", "/V:OFF", "/C", "x.bat"},
                       error) == "cmd.exe /D /S /V:OFF /c \"\"x.bat\"\"");

    // cmd.exe would read "/c" in "C:/Windows/System32/cmd.exe".
    CHECK(command_line({"C:/Windows/System32/cmd.exe", "/c", "x.bat"}, error) ==
          "C:\\Windows\\System32\\cmd.exe /d /v:off /s /c \"\"x.bat\"\"");
}

TEST_CASE("a cmd.exe line that cannot be made is refused, and says why") {
    const std::vector<std::vector<std::string>> bad = {
        {"cmd.exe", "/d", "x.bat"},                // no /c
        {"cmd.exe", "/c"},                         // nothing after it
        {"cmd.exe", "echo", "/c", "x.bat"},        // not a switch
        {"CMD", "/c", "x.bat", "quote\"d"},        // a quote
        {"prog.exe", std::string("nul\0byte", 8)}, // a NUL
    };
    for (const auto& argv : bad) {
        std::string error;
        CHECK(command_line(argv, error).empty());
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE("other programs get the C runtime's quoting") {
    std::string error;
    CHECK(command_line({"C:\\Python\\python.exe", "-I", "C:\\w\\job.py",
                        "two words", "a\"b"},
                       error) ==
          "C:\\Python\\python.exe -I C:\\w\\job.py \"two words\" "
          "\"a\\\"b\"");
}

TEST_CASE("cmd.exe is known by its file name, case aside") {
    CHECK(is_cmd("cmd.exe"));
    CHECK(is_cmd("C:\\Windows\\System32\\CMD.EXE"));
    CHECK(is_cmd("cmd"));
    CHECK_FALSE(is_cmd("C:\\tools\\mycmd.exe"));
    CHECK_FALSE(is_cmd("cmd.exe.bat"));
}
