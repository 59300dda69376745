#include "node/spool.hpp"

#include "support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <fstream>

namespace fs = std::filesystem;
using namespace std::string_literals;
using namespace cloudnode;
using cloudproto::Clock;
using cloudproto::JobState;

using test_support::TempDir;

namespace {

Job make_job(int n) {
    Job job;
    job.report.job_id = "job-number-" + std::to_string(1000000 + n);
    job.report.accepted = Clock::time_point{std::chrono::milliseconds{n}};
    job.descriptor_text = "runtime = \"bash\"\nreply_to = \"a@b.c\"\n";
    // Binary-safe: NUL, CR, a line with only a dot, no final newline.
    job.script = "echo " + std::to_string(n) + "\r\n.\n\0tail"s;
    job.digest = payload_digest(job.descriptor_text, job.script);
    return job;
}

std::size_t count(const fs::path& dir, const std::string& extension) {
    std::size_t n = 0;
    for (auto& e : fs::directory_iterator(dir))
        n += e.path().extension() == extension;
    return n;
}

constexpr std::chrono::hours week{24 * 7};

} // namespace

TEST_CASE("jobs stored while a flush is under way share the next one") {
    TempDir dir;
    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    spool.recover(week);

    int stored = 0;
    for (int i = 0; i < 10; ++i)
        spool.store_job(make_job(i), [&](const std::string& error) {
            CHECK(error.empty());
            ++stored;
        });
    io.run();
    CHECK(stored == 10);
    // The first job started a flush alone; the nine others waited for it
    // and went into one batch together.
    CHECK(count(dir.path / "batches", ".batch") == 2);
}

TEST_CASE("a restart finds unfinished jobs, in order, byte for byte") {
    TempDir dir;
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        for (int i = 0; i < 5; ++i)
            spool.store_job(make_job(i), [](const std::string&) {});
        io.run();
    }
    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    REQUIRE(found.unfinished.size() == 5);
    for (int i = 0; i < 5; ++i) {
        auto want = make_job(i);
        CHECK(found.unfinished[i].id() == want.id());
        CHECK(found.unfinished[i].script == want.script);
        CHECK(found.unfinished[i].descriptor_text == want.descriptor_text);
        CHECK(found.unfinished[i].report.accepted == want.report.accepted);
        CHECK(found.unfinished[i].durable);
    }
    CHECK(found.finished.empty());
    CHECK(found.problems.empty());
}

TEST_CASE("results replace batches, and their output reads back exactly") {
    TempDir dir;
    const std::string out("out\0put\r\n", 9);
    const std::string err(100000, 'e');
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        for (int i = 0; i < 3; ++i)
            spool.store_job(make_job(i), [](const std::string&) {});
        io.run();
        io.restart();

        for (int i = 0; i < 3; ++i) {
            Job job = make_job(i);
            job.report.state = JobState::done;
            job.report.outcome = cloudproto::Outcome::exited;
            job.report.exit_code = i;
            job.report.finished = Clock::now();
            spool.store_result(job, out, err, "mail " + job.id(), "",
                               [](const std::string& e) { CHECK(e.empty()); });
        }
        io.run();
        io.restart();

        std::string got_out, got_err;
        spool.load_output(make_job(1).id(), [&](const std::string& e,
                                                std::string o, std::string r) {
            CHECK(e.empty());
            got_out = std::move(o);
            got_err = std::move(r);
        });
        io.run();
        CHECK(got_out.size() == out.size());
        CHECK((got_out == out)); // not decomposed: no megabytes in a report
        CHECK((got_err == err));
    }
    CHECK(count(dir.path / "batches", ".batch") == 0);
    CHECK(count(dir.path / "outbox", ".eml") == 3);

    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    CHECK(found.unfinished.empty());
    REQUIRE(found.finished.size() == 3);
    for (const auto& job : found.finished) {
        CHECK(job.report.state == JobState::done);
        CHECK(job.digest.size() == 64);
    }
}

TEST_CASE("start-up drops unfinished writes and sets damaged files aside") {
    TempDir dir;
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        spool.store_job(make_job(1), [](const std::string&) {});
        io.run();
    }
    std::ofstream(dir.path / "batches" / "00000000000000000099.batch.tmp")
        << "half written";
    std::ofstream(dir.path / "batches" / "00000000000000000100.batch")
        << "cloudproto-batch 1\nJOB short-record 1 999 999\nabc";
    std::ofstream(dir.path / "results" / "x.result") << "nonsense";

    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    CHECK(found.unfinished.size() == 1);
    CHECK(found.problems.size() == 2);
    CHECK_FALSE(
        fs::exists(dir.path / "batches" / "00000000000000000099.batch.tmp"));
    CHECK(fs::exists(dir.path / "batches" /
                     "00000000000000000100.batch.damaged"));
    CHECK(fs::exists(dir.path / "results" / "x.result.damaged"));

    // New batches are numbered after every one seen, damaged ones too.
    spool.store_job(make_job(2), [](const std::string&) {});
    io.run();
    CHECK(fs::exists(dir.path / "batches" / "00000000000000000101.batch"));
}

TEST_CASE("results past their retention are forgotten at start-up") {
    TempDir dir;
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        Job old = make_job(1);
        old.report.state = JobState::done;
        old.report.finished = Clock::now() - std::chrono::hours{24 * 8};
        Job fresh = make_job(2);
        fresh.report.state = JobState::done;
        fresh.report.finished = Clock::now();
        spool.store_result(old, "", "", "m", "", [](const std::string&) {});
        spool.store_result(fresh, "", "", "m", "", [](const std::string&) {});
        io.run();
    }
    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    REQUIRE(found.finished.size() == 1);
    CHECK(found.finished[0].id() == make_job(2).id());
    CHECK(count(dir.path / "results", ".result") == 1);
}
