#include "cloudproto/job_report.hpp"

#include "cloudproto/job_id.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace cloudproto;

TEST_CASE("timestamps round-trip in the spec's one shape") {
    auto t = Clock::time_point{std::chrono::milliseconds{1796319721123}};
    CHECK(format_timestamp(t) == "2026-12-03T17:42:01.123Z");
    CHECK(parse_timestamp("2026-12-03T17:42:01.123Z") == t);
    CHECK(parse_timestamp("1970-01-01T00:00:00.000Z") == Clock::time_point{});

    const char* bad[] = {"",
                         "2026-12-03T17:42:01Z",
                         "2026-12-03 17:42:01.123Z",
                         "2026-13-03T17:42:01.123Z",
                         "2026-12-03T24:42:01.123Z",
                         "2026-12-03T17:42:01.123+01:00",
                         "2026-12-0xT17:42:01.123Z"};
    for (auto text : bad) {
        CAPTURE(text);
        CHECK_FALSE(parse_timestamp(text));
    }
}

// Found by fuzz/fuzz_job_report: a peer's year 9999 overflowed the
// clock's 64-bit nanoseconds (signed overflow, a garbage instant).
TEST_CASE("a timestamp the clock cannot hold is refused, never wrapped") {
    const char* far[] = {"9999-12-31T23:59:59.999Z",
                         "2262-04-12T00:00:00.000Z",
                         "1677-09-21T00:00:00.000Z",
                         "0000-01-01T00:00:00.000Z"};
    for (std::string text : far) {
        CAPTURE(text);
        // A clock with a wider range may hold it: then it reads back.
        if (auto t = parse_timestamp(text))
            CHECK(format_timestamp(*t) == text);
    }
    CHECK(parse_timestamp("2262-04-11T00:00:00.000Z"));
    CHECK(parse_timestamp("1677-09-22T00:00:00.000Z"));
}

// Found by fuzz/fuzz_job_report: before 1970 the milliseconds came out
// negative ("...00.-995Z"), which no node could read back.
TEST_CASE("a timestamp before 1970 is written as it was read") {
    for (std::string text : {"1969-01-01T00:00:00.005Z",
                             "1969-12-31T23:59:59.999Z",
                             "1900-02-28T12:30:00.500Z"}) {
        CAPTURE(text);
        auto t = parse_timestamp(text);
        REQUIRE(t);
        CHECK(format_timestamp(*t) == text);
    }
}

TEST_CASE("a finished report survives to_fields and from_fields") {
    JobReport r;
    r.job_id = "abcdefghijklmnop";
    r.state = JobState::done;
    r.runtime = "bash";
    r.node = "alpha";
    r.accepted = Clock::time_point{std::chrono::milliseconds{1000}};
    r.started = Clock::time_point{std::chrono::milliseconds{2000}};
    r.finished = Clock::time_point{std::chrono::milliseconds{3500}};
    r.outcome = Outcome::exited;
    r.exit_code = 3;
    r.duration = std::chrono::milliseconds{1500};
    r.stdout_bytes = 5000000;
    r.stdout_truncated = true;

    auto back = JobReport::from_fields(r.to_fields());
    REQUIRE(back);
    CHECK(back->job_id == r.job_id);
    CHECK(back->state == r.state);
    CHECK(back->node == "alpha");
    CHECK(back->finished == r.finished);
    CHECK(back->outcome == Outcome::exited);
    CHECK(back->exit_code == 3);
    CHECK_FALSE(back->signal);
    CHECK(back->duration == r.duration);
    CHECK(back->stdout_bytes == 5000000);
    CHECK(back->stdout_truncated);
    CHECK_FALSE(back->stderr_truncated);
}

TEST_CASE("fields a newer node adds are ignored; JOB and STATE are needed") {
    std::vector<Field> f = {{"JOB", "abcdefghijklmnop"},
                            {"STATE", "running"},
                            {"X-FUTURE", "whatever it means"}};
    auto r = JobReport::from_fields(f);
    REQUIRE(r);
    CHECK(r->state == JobState::running);

    CHECK_FALSE(JobReport::from_fields({{"STATE", "done"}}));
    CHECK_FALSE(JobReport::from_fields({{"JOB", "abcdefghijklmnop"}}));
    CHECK_FALSE(JobReport::from_fields(
        {{"JOB", "abcdefghijklmnop"}, {"STATE", "exploded"}}));
}

TEST_CASE("report lines parse as KEY value") {
    struct Row {
        const char* line;
        bool ok;
        const char* key;
        const char* value;
    } rows[] = {
        {"STATE done", true, "STATE", "done"},
        {"ERROR cannot run: no such file", true, "ERROR",
         "cannot run: no such file"},
        {"WAIT", true, "WAIT", ""},
        {"STDOUT-BYTES 12", true, "STDOUT-BYTES", "12"},
        {"state done", false, "", ""},
        {" STATE done", false, "", ""},
        {"", false, "", ""},
    };
    for (const auto& row : rows) {
        CAPTURE(row.line);
        auto f = parse_field(row.line);
        REQUIRE(bool(f) == row.ok);
        if (f) {
            CHECK(f->first == row.key);
            CHECK(f->second == row.value);
            CHECK(format_field(*f) == (f->second.empty()
                                           ? std::string(row.key) + " "
                                           : std::string(row.line)));
        }
    }
}

TEST_CASE("job ids: made valid and different, checked strictly") {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        auto id = make_job_id();
        CHECK(id.size() == 26);
        CHECK(is_valid_job_id(id));
        seen.insert(id);
    }
    CHECK(seen.size() == 1000);

    CHECK(is_valid_job_id("abcdefghijklmnop"));
    CHECK(is_valid_job_id(std::string(64, 'A')));
    CHECK_FALSE(is_valid_job_id("abcdefghijklmno"));
    CHECK_FALSE(is_valid_job_id(std::string(65, 'a')));
    CHECK_FALSE(is_valid_job_id("abcdefghijklmno/"));
    CHECK_FALSE(is_valid_job_id("abcdefghijklmno."));
    CHECK_FALSE(is_valid_job_id("abcdefghijklmno\n"));
    CHECK_FALSE(is_valid_job_id("abcdefghijklmn\xc3\xa9"));
}

TEST_CASE("a relayed job's RELAYED-TO and TRACE survive the fields") {
    struct Row {
        JobState state;
        const char* relayed_to;
        const char* trace;
    } rows[] = {
        {JobState::relayed, "beta", ""},
        {JobState::relayed, "gamma.example.org", "alpha"},
        {JobState::running, "", "alpha,beta"},
        {JobState::done, "", "alpha,beta,gamma"},
        {JobState::queued, "", ""},
    };
    for (const auto& row : rows) {
        CAPTURE(row.relayed_to);
        CAPTURE(row.trace);
        JobReport r;
        r.job_id = "abcdefghijklmnop";
        r.state = row.state;
        r.node = "alpha";
        r.relayed_to = row.relayed_to;
        r.trace = row.trace;

        auto fields = r.to_fields();
        std::size_t relayed_to_lines = 0;
        std::size_t trace_lines = 0;
        for (const auto& [key, value] : fields) {
            if (key == "RELAYED-TO") {
                ++relayed_to_lines;
                CHECK(value == row.relayed_to);
            } else if (key == "TRACE") {
                ++trace_lines;
                CHECK(value == row.trace);
            }
        }
        // Empty means absent: no key with an empty value.
        CHECK(relayed_to_lines == (*row.relayed_to ? 1u : 0u));
        CHECK(trace_lines == (*row.trace ? 1u : 0u));

        auto back = JobReport::from_fields(fields);
        REQUIRE(back);
        CHECK(back->state == row.state);
        CHECK(back->node == "alpha");
        CHECK(back->relayed_to == row.relayed_to);
        CHECK(back->trace == row.trace);
    }
}

TEST_CASE("RELAYED-TO and TRACE come after NODE, as the spec lists them") {
    JobReport r;
    r.job_id = "abcdefghijklmnop";
    r.state = JobState::relayed;
    r.runtime = "bash";
    r.node = "alpha";
    r.relayed_to = "beta";
    r.trace = "origin";
    r.accepted = Clock::time_point{std::chrono::milliseconds{1000}};

    std::vector<std::string> keys;
    for (const auto& f : r.to_fields())
        keys.push_back(f.first);
    std::vector<std::string> want = {"JOB",        "STATE", "RUNTIME", "NODE",
                                     "RELAYED-TO", "TRACE", "ACCEPTED"};
    CHECK(keys == want);

    // As the lines of a report: "KEY value" and back.
    std::vector<Field> reread;
    for (const auto& f : r.to_fields()) {
        auto parsed = parse_field(format_field(f));
        REQUIRE(parsed);
        reread.push_back(*parsed);
    }
    auto back = JobReport::from_fields(reread);
    REQUIRE(back);
    CHECK(back->relayed_to == "beta");
    CHECK(back->trace == "origin");
}
