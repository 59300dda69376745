#include "cloudproto/federation.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

using namespace cloudproto;

TEST_CASE("node names: 1 to 64 of letters, digits, '.' and '-'") {
    struct Row {
        std::string name;
        bool valid;
    } rows[] = {
        {"alpha", true},
        {"Alpha-2.example.org", true},
        {"a", true},
        {"0", true},
        {"a.b", true},
        {"a-b", true},
        {".", true},
        {"-", true},
        {std::string(64, 'a'), true},
        {std::string(65, 'a'), false},
        {"", false},
        {"a,b", false},
        {",", false},
        {"a b", false},
        {" a", false},
        {"a_b", false},
        {"a:b", false},
        {"a/b", false},
        {"a\tb", false},
        {"a\nb", false},
        {std::string("a\0b", 3), false},
        {"caf\xc3\xa9", false}, // UTF-8 e acute
        {"\xff", false},
    };
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(is_valid_node_name(row.name) == row.valid);
    }
}

TEST_CASE("a TRACE value parses into its node names") {
    using Names = std::vector<std::string>;
    struct Row {
        std::string text;
        std::optional<Names> names; // nullopt: refused
    } rows[] = {
        {"alpha", Names{"alpha"}},
        {"alpha,beta", Names{"alpha", "beta"}},
        {"a.example.org,b-2,C", Names{"a.example.org", "b-2", "C"}},
        {std::string(64, 'x') + ",y", Names{std::string(64, 'x'), "y"}},
        {"", std::nullopt},
        {",", std::nullopt},
        {"alpha,,beta", std::nullopt},
        {"alpha,", std::nullopt},
        {",alpha", std::nullopt},
        {"alpha,be_ta", std::nullopt},
        {"alpha beta", std::nullopt},
        {"alpha, beta", std::nullopt},
        {"alpha," + std::string(65, 'x'), std::nullopt},
    };
    for (const auto& row : rows) {
        CAPTURE(row.text);
        auto got = parse_trace(row.text);
        REQUIRE(got.has_value() == row.names.has_value());
        if (got)
            CHECK(*got == *row.names);
    }
}

TEST_CASE("a relay route writes HOPS and TRACE and knows what it crossed") {
    RelayRoute route;
    route.hops = 2;
    route.trace = {"alpha", "beta.example.org"};
    CHECK(route.trace_text() == "alpha,beta.example.org");
    CHECK(route.parameters() == "HOPS=2 TRACE=alpha,beta.example.org");
    CHECK(route.crossed("alpha"));
    CHECK(route.crossed("beta.example.org"));
    CHECK_FALSE(route.crossed("beta"));
    CHECK_FALSE(route.crossed("gamma"));
    CHECK_FALSE(route.crossed(""));

    // What parameters() writes, parse_trace reads back.
    auto back = parse_trace(route.trace_text());
    REQUIRE(back);
    CHECK(*back == route.trace);

    RelayRoute one{1, {"origin"}};
    CHECK(one.parameters() == "HOPS=1 TRACE=origin");

    RelayRoute none;
    CHECK(none.trace_text() == "");
    CHECK_FALSE(none.crossed("alpha"));
}

// proto-spec 7.2 and 8.10: "Node names are compared without regard to
// case." A trace that holds ALPHA has crossed node alpha: the loop check
// (Session::check_route) relies on crossed().
TEST_CASE("a route has crossed a node whatever the case of its name") {
    RelayRoute route{2, {"ALPHA", "Beta.Example.Org"}};
    CHECK(route.crossed("alpha"));
    CHECK(route.crossed("beta.example.org"));
}

TEST_CASE("CAPACITY lines round-trip") {
    RuntimeCapacity rows[] = {
        {"bash", 0, 0},
        {"python3.11", 2, 17},
        {"c++_gcc-13", 999999999, 999999999},
        {"r", 1, 0},
    };
    for (const auto& c : rows) {
        auto line = format_capacity(c);
        CAPTURE(line);
        auto back = parse_capacity(line);
        REQUIRE(back);
        CHECK(back->runtime == c.runtime);
        CHECK(back->free_slots == c.free_slots);
        CHECK(back->queued_jobs == c.queued_jobs);
    }
    CHECK(format_capacity({"bash", 3, 4}) == "RUNTIME bash 3 4");
}

TEST_CASE("CAPACITY lines that are not one runtime's figures are refused") {
    struct Row {
        const char* line;
        bool ok;
    } rows[] = {
        {"RUNTIME bash 1 2", true},
        {"RUNTIME  bash  1 2", true}, // runs of spaces separate words
        {"RUNTIME bash 0 0", true},
        {"RUNTIME bash 999999999 1", true},
        {"", false},
        {"RUNTIME", false},
        {"RUNTIME bash", false},
        {"RUNTIME bash 1", false},
        {"RUNTIME bash 1 2 3", false},
        {"runtime bash 1 2", false},
        {"CAPACITY bash 1 2", false},
        {"RUNTIME Bash 1 2", false},
        {"RUNTIME _bash 1 2", false},
        {"RUNTIME ba/sh 1 2", false},
        {"RUNTIME bash 01 2", false},
        {"RUNTIME bash 1 00", false},
        {"RUNTIME bash 1000000000 1", true},           // 10 digits
        {"RUNTIME bash 1000000000000000000 1", false}, // 19 digits
        {"RUNTIME bash 1 1000000000000000000", false},
        {"RUNTIME bash -1 2", false},
        {"RUNTIME bash 1 -2", false},
        {"RUNTIME bash +1 2", false},
        {"RUNTIME bash 1x 2", false},
        {"RUNTIME bash 1 2.0", false},
    };
    for (const auto& row : rows) {
        CAPTURE(row.line);
        CHECK(parse_capacity(row.line).has_value() == row.ok);
    }
}
