// A folder of a test's own, removed with everything in it at the end.
#pragma once

#include <filesystem>
#include <random>
#include <string>

namespace test_support {

struct TempDir {
    std::filesystem::path path;

    explicit TempDir(const std::string& what = "test") {
        std::random_device random;
        path = std::filesystem::temp_directory_path() /
               ("cloudproto-" + what + "-" + std::to_string(random()));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

} // namespace test_support
