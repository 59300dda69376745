#include "node/platform/durable_file.hpp"

#include "support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <system_error>

namespace fs = std::filesystem;
using cloudnode::platform::FileWrite;
using cloudnode::platform::write_files_durably;

using test_support::TempDir;

namespace {

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

} // namespace

TEST_CASE("files written together are all in place afterwards") {
    TempDir dir;
    fs::create_directories(dir.path / "b");
    const std::string binary("a\0b\r\n", 5);
    FileWrite files[] = {{dir.path / "one", "first"},
                         {dir.path / "b" / "two", binary}};
    write_files_durably(files);
    CHECK(read(dir.path / "one") == "first");
    CHECK(read(dir.path / "b" / "two") == binary);
    CHECK(std::distance(fs::directory_iterator(dir.path),
                        fs::directory_iterator{}) == 2);
}

TEST_CASE("a failed write leaves no temporary file and no partial file") {
    TempDir dir;
    FileWrite files[] = {{dir.path / "one", "first"},
                         {dir.path / "missing" / "two", "second"}};
    CHECK_THROWS_AS(write_files_durably(files), std::system_error);
    CHECK(fs::is_empty(dir.path));
}
