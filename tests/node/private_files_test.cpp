// The node's folders are its own, and a secret others may read is told
// apart from one they may not, on each platform.
#include "node/platform/private_files.hpp"

#include "support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <fstream>

namespace fs = std::filesystem;
using namespace cloudnode::platform;
using test_support::TempDir;

namespace {

void write(const fs::path& file) {
    std::ofstream(file) << "secret\n";
}

} // namespace

TEST_CASE("a private folder is made with its parents, and made again") {
    TempDir dir("private");
    const fs::path spool = dir.path / "a" / "spool";
    make_private_folder(spool);
    CHECK(fs::is_directory(spool));
    write(spool / "key");
    make_private_folder(spool);
    CHECK(fs::is_regular_file(spool / "key"));
}

// Windows' access lists: windows/private_files_windows_test.cpp (Wine
// keeps only what Unix modes can say, so the lists are checked in memory
// there).
#if !defined(_WIN32)
TEST_CASE("a private folder is the node's user's alone") {
    TempDir dir("private");
    const fs::path spool = dir.path / "spool";
    make_private_folder(spool);
    CHECK_FALSE(readable_by_others(spool));
    CHECK((fs::status(spool).permissions() & fs::perms::all) ==
          fs::perms::owner_all);
}

TEST_CASE("a file others may read is told apart, and jobs may cross the "
          "work folder without listing it") {
    TempDir dir("private");
    const fs::path key = dir.path / "key";
    write(key);
    fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
    CHECK_FALSE(readable_by_others(key));
    fs::permissions(key, fs::perms::others_read, fs::perm_options::add);
    CHECK(readable_by_others(key));
    CHECK_FALSE(readable_by_others(dir.path / "missing"));

    const fs::path work = dir.path / "work";
    make_private_folder(work);
    let_jobs_cross(work);
    const auto p = fs::status(work).permissions();
    CHECK((p & fs::perms::others_exec) != fs::perms::none);
    CHECK((p & fs::perms::others_read) == fs::perms::none);
}
#endif
