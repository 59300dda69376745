#include "cloudproto/descriptor.hpp"

#include "cloudproto/protocol.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

using namespace std::literals;
using cloudproto::Descriptor;
using cloudproto::DescriptorError;
using cloudproto::parse_descriptor;

namespace {

const std::filesystem::path vectors_dir =
    CLOUDPROTO_SOURCE_DIR "/proto-spec/vectors/descriptors";

std::string read_file(const std::filesystem::path& path) {
    std::ifstream file(path, std::ios::binary);
    REQUIRE_MESSAGE(file, "cannot open " << path);
    return {std::istreambuf_iterator<char>(file), {}};
}

// "ok", or the field a DescriptorError names: the vectors' own words.
std::string outcome(const cloudproto::DescriptorResult& result) {
    if (std::holds_alternative<Descriptor>(result))
        return "ok";
    return "error " + std::get<DescriptorError>(result).field;
}

// A 553 reply line carries the reason; it must fit and stay printable.
bool fits_a_reply_line(const DescriptorError& error) {
    constexpr std::string_view prefix = "553 descriptor rejected: ";
    std::string text = error.to_string();
    bool printable = std::all_of(text.begin(), text.end(),
                                 [](char c) { return c >= 0x20 && c < 0x7f; });
    return printable &&
           prefix.size() + text.size() + 2 <= cloudproto::max_line_bytes;
}

Descriptor parse_ok(std::string_view toml) {
    cloudproto::DescriptorResult result = parse_descriptor(toml);
    if (auto* error = std::get_if<DescriptorError>(&result))
        FAIL("refused: " << error->to_string());
    return std::get<Descriptor>(result);
}

DescriptorError parse_error(std::string_view toml) {
    cloudproto::DescriptorResult result = parse_descriptor(toml);
    REQUIRE(std::holds_alternative<DescriptorError>(result));
    return std::get<DescriptorError>(result);
}

} // namespace

// Each file begins with "# expect: ok" or "# expect: error <field>".
TEST_CASE("descriptor vectors of the spec") {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(vectors_dir))
        if (entry.path().extension() == ".toml")
            files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    CHECK(files.size() >= 20);

    constexpr std::string_view expect = "# expect: ";
    for (const auto& path : files) {
        INFO(path.filename().string());
        std::string text = read_file(path);
        std::string first_line = text.substr(0, text.find('\n'));
        REQUIRE(first_line.starts_with(expect));

        cloudproto::DescriptorResult result = parse_descriptor(text);
        CHECK(outcome(result) == first_line.substr(expect.size()));
        if (auto* error = std::get_if<DescriptorError>(&result))
            CHECK(fits_a_reply_line(*error));
    }
}

TEST_CASE("descriptor: the fields as parsed") {
    Descriptor minimal = parse_ok(R"(
        runtime = "bash"
        reply_to = "alice@example.org"
    )");
    CHECK(minimal.runtime == "bash");
    CHECK(minimal.args.empty());
    CHECK(minimal.reply_to == "alice@example.org");
    CHECK_FALSE(minimal.timeout.has_value());

    Descriptor full = parse_ok(R"(
        runtime = "python"
        args = ["two words", "say \"hi\"", 'C:\dir', "", "é", "a\tb"]
        reply_to = "bob+jobs@mail.example.org"
        timeout_seconds = 30
        priority = "unknown keys are ignored"
    )");
    CHECK(full.runtime == "python");
    CHECK(full.args == std::vector<std::string>{"two words", "say \"hi\"",
                                                "C:\\dir", "", "\xc3\xa9",
                                                "a\tb"});
    CHECK(full.reply_to == "bob+jobs@mail.example.org");
    CHECK(full.timeout == std::chrono::seconds{30});

    // The node, not the parser, holds the maximum.
    Descriptor long_job = parse_ok(R"(
        runtime = "bash"
        reply_to = "alice@example.org"
        timeout_seconds = 9000000000
    )");
    CHECK(long_job.timeout == std::chrono::seconds{9000000000});
}

TEST_CASE("descriptor: errors name the field and say why") {
    struct Case {
        std::string_view toml;
        std::string_view message;
    };
    const Case cases[] = {
        {"reply_to = \"a@b\"", "runtime: is required"},
        {"runtime = 1\nreply_to = \"a@b\"", "runtime: must be a string"},
        {"runtime = \"bash\"\nreply_to = \"a@b\"\nargs = [\"a\", \"b\", 3]",
         "args[2]: must be a string"},
        {"runtime = \"bash\"\nreply_to = \"a@b\"\nargs = [\"\\u0000\"]",
         "args[0]: must not contain NUL"},
        {"runtime = \"bash\"\nreply_to = \"a@b\"\nargs = \"a b\"",
         "args: must be an array of strings"},
        {"runtime = \"bash\"", "reply_to: is required"},
        {"runtime = \"bash\"\nreply_to = \"a@b\"\ntimeout_seconds = 0",
         "timeout_seconds: must be at least 1"},
        {"runtime = \"bash\"\nreply_to = \"a@b\"\ntimeout_seconds = \"9\"",
         "timeout_seconds: must be an integer"},
    };
    for (const Case& c : cases) {
        INFO(c.toml);
        CHECK(parse_error(c.toml).to_string() == c.message);
    }
}

TEST_CASE("descriptor: a TOML error says where") {
    DescriptorError error = parse_error("runtime = \"bash\"\nreply_to = x\n");
    CHECK(error.field == "descriptor");
    CHECK(error.reason.find("line 2, column 12") != std::string::npos);

    // Octets the TOML parser quotes are escaped, never passed on raw.
    error = parse_error("runtime = \"bash\"\n\xff\xfe = 1\n");
    CHECK(error.field == "descriptor");
    CHECK(fits_a_reply_line(error));
}

TEST_CASE("descriptor: the first fault found is the one reported") {
    DescriptorError error = parse_error(R"(
        runtime = "Bash"
        args = [1]
        timeout_seconds = -1
    )");
    CHECK(error.field == "runtime");
}

TEST_CASE("descriptor: argument limits") {
    auto with_args = [](std::size_t count, std::size_t bytes) {
        std::string toml = "runtime = \"bash\"\nreply_to = \"a@b\"\nargs = [";
        for (std::size_t i = 0; i < count; ++i)
            toml += "\"" + std::string(bytes, 'x') + "\",";
        return toml + "]\n";
    };
    using cloudproto::max_arg_bytes;
    using cloudproto::max_args;

    CHECK(parse_ok(with_args(max_args, 1)).args.size() == max_args);
    CHECK(parse_error(with_args(max_args + 1, 1)).field == "args");
    CHECK(parse_ok(with_args(1, max_arg_bytes)).args[0].size() ==
          max_arg_bytes);
    CHECK(parse_error(with_args(2, max_arg_bytes + 1)).field == "args[0]");
}

TEST_CASE("is_valid_runtime_name") {
    struct Case {
        std::string_view name;
        bool valid;
    };
    const std::string longest(cloudproto::max_runtime_name_bytes, 'a');
    const std::string too_long = longest + "a";
    const Case cases[] = {
        {"bash", true},
        {"python3", true},
        {"3d", true},
        {"node.js", true},
        {"c++", true},
        {"a_b-c", true},
        {"x", true},
        {longest, true},
        {"", false},
        {too_long, false},
        {"Bash", false},
        {".bash", false},
        {"-bash", false},
        {"_bash", false},
        {"+x", false},
        {"ba sh", false},
        {"bash\n", false},
        {"ba/sh", false},
        {"b\xc3\xa4sh", false},
        {"bash\0"sv, false},
        {"bash=1", false},
    };
    for (const Case& c : cases) {
        INFO("name \"" << std::string(c.name) << "\"");
        CHECK(cloudproto::is_valid_runtime_name(c.name) == c.valid);
    }
}

TEST_CASE("is_valid_address") {
    struct Case {
        std::string_view address;
        bool valid;
    };
    const std::string local(64, 'l');
    const std::string domain = std::string(63, 'd') + "." +
                               std::string(63, 'd') + "." +
                               std::string(61, 'd'); // 189 octets
    const std::string longest = local + "@" + domain;
    const std::string too_long = longest + "d";
    REQUIRE(longest.size() == cloudproto::max_address_bytes);

    const Case cases[] = {
        {"alice@example.org", true},
        {"a@b", true},
        {"first.last@example.org", true},
        {"alice+jobs@example.org", true},
        {"!#$%&'*+-/=?^_`{|}~@example.org", true},
        {"alice@mail-1.Example.ORG", true},
        {"root@localhost", true},
        {longest, true},
        {too_long, false},
        {"", false},
        {"alice", false},
        {"@example.org", false},
        {"alice@", false},
        {"alice@bob@example.org", false},
        {"alice@example.org\r\nBcc: eve@evil.example", false},
        {"alice@example.org\n", false},
        {"alice@example.org\r", false},
        {"alice smith@example.org", false},
        {" alice@example.org", false},
        {"alice@example.org,eve@evil.example", false},
        {"alice@example.org;", false},
        {"Alice <alice@example.org>", false},
        {"<alice@example.org>", false},
        {"\"alice\"@example.org", false},
        {"alice(comment)@example.org", false},
        {"al\\ice@example.org", false},
        {"alice:x@example.org", false},
        {"alice@[192.0.2.1]", false},
        {"jos\xc3\xa9@example.org", false},
        {"alice@ex\xc3\xa4mple.org", false},
        {"alice@ex_ample.org", false},
        {"alice@example..org", false},
        {"alice@.example.org", false},
        {"alice@example.org.", false},
        {".alice@example.org", false},
        {"alice.@example.org", false},
        {"al..ice@example.org", false},
        {"alice\t@example.org", false},
        {"alice\0@example.org"sv, false},
        {"alice@exa\x7fmple.org", false},
    };
    for (const Case& c : cases) {
        INFO("address \"" << std::string(c.address) << "\"");
        CHECK(cloudproto::is_valid_address(c.address) == c.valid);
    }
}
