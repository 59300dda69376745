#include "node/spool.hpp"

#include "support/temp_dir.hpp"

#include "cloudproto/text.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

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

// Federation: routes, results owed to a peer, relayed jobs' HOPS and
// TRACE (proto-spec "Custody along a relay").
namespace {

const Spool::Done ignore = [](const std::string&) {};

Job relayed_job(int n, std::uint64_t hops, std::vector<std::string> trace) {
    Job job = make_job(n);
    job.route.hops = hops;
    job.route.trace = std::move(trace);
    return job;
}

Job finished(Job job) {
    job.report.state = JobState::done;
    job.report.outcome = cloudproto::Outcome::exited;
    job.report.exit_code = 0;
    job.report.finished = Clock::now();
    return job;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

const Job* find(const std::vector<Job>& jobs, const std::string& id) {
    for (const auto& job : jobs) {
        if (job.id() == id)
            return &job;
    }
    return nullptr;
}

} // namespace

TEST_CASE("a relayed job comes back from the spool with its route") {
    TempDir dir;
    const auto in = relayed_job(1, 2, {"alpha", "beta.example.org"});
    const auto own = make_job(2);
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        spool.store_job(in, ignore);
        spool.store_job(own, ignore);
        io.run();
    }
    std::string batches;
    for (auto& e : fs::directory_iterator(dir.path / "batches"))
        batches += read_file(e.path());
    CHECK(batches.find(" HOPS=2 TRACE=alpha,beta.example.org\n") !=
          std::string::npos);

    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    CHECK(found.problems.empty());
    REQUIRE(found.unfinished.size() == 2);

    const Job& back = found.unfinished[0];
    CHECK(back.id() == in.id());
    CHECK(back.relayed_in());
    CHECK(back.route.hops == 2);
    CHECK(back.route.trace == in.route.trace);
    CHECK(back.script == in.script);
    CHECK(back.descriptor_text == in.descriptor_text);
    CHECK(back.relay_peer.empty());
    CHECK_FALSE(back.in_doubt);

    const Job& plain = found.unfinished[1];
    CHECK(plain.id() == own.id());
    CHECK_FALSE(plain.relayed_in());
    CHECK(plain.route.hops == 0);
}

TEST_CASE("a job whose route was stored comes back in doubt, to that peer") {
    TempDir dir;
    auto going = make_job(1);
    going.relay_peer = "gamma";
    const auto staying = make_job(2);
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        spool.store_job(going, ignore);
        spool.store_job(staying, ignore);
        io.run();
        io.restart();
        std::string error = "not called";
        spool.store_route(going, [&](const std::string& e) { error = e; });
        io.run();
        CHECK(error == "");
    }
    auto route = dir.path / "routes" / (going.id() + ".route");
    REQUIRE(fs::exists(route));
    CHECK(read_file(route).find("PEER gamma\n") != std::string::npos);

    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    CHECK(found.problems.empty());
    REQUIRE(found.unfinished.size() == 2);
    const Job* g = find(found.unfinished, going.id());
    const Job* s = find(found.unfinished, staying.id());
    REQUIRE(g);
    REQUIRE(s);
    CHECK(g->relay_peer == "gamma");
    CHECK(g->in_doubt);
    CHECK(s->relay_peer == "");
    CHECK_FALSE(s->in_doubt);
    // Still owed a result: the route stays.
    CHECK(fs::exists(route));
}

TEST_CASE("a result takes the job's route away, at once or at start-up") {
    TempDir dir;
    auto job = make_job(1);
    job.relay_peer = "gamma";
    auto routes = dir.path / "routes";
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        spool.store_job(job, ignore);
        io.run();
        io.restart();
        spool.store_route(job, ignore);
        io.run();
        io.restart();
        REQUIRE(fs::exists(routes / (job.id() + ".route")));
        spool.store_result(finished(job), "out", "", "mail", "", ignore);
        io.run();
    }
    CHECK_FALSE(fs::exists(routes / (job.id() + ".route")));

    // A route left behind (say, a crash before it was removed), and one
    // of a job the spool never heard of.
    std::ofstream(routes / (job.id() + ".route"))
        << "cloudproto-route 1\nPEER gamma\n";
    std::ofstream(routes / "unknown-job-0000001.route")
        << "cloudproto-route 1\nPEER gamma\n";

    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    CHECK(found.problems.empty());
    CHECK(found.unfinished.empty());
    REQUIRE(found.finished.size() == 1);
    CHECK(found.finished[0].id() == job.id());
    CHECK(count(routes, ".route") == 0);
}

TEST_CASE("a damaged route is set aside and its job runs without it") {
    TempDir dir;
    const auto job = make_job(1);
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        spool.store_job(job, ignore);
        io.run();
    }
    auto route = dir.path / "routes" / (job.id() + ".route");
    std::ofstream(route) << "cloudproto-route 1\nPEER not_a_node\n";

    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    REQUIRE(found.unfinished.size() == 1);
    CHECK(found.unfinished[0].relay_peer == "");
    CHECK_FALSE(found.unfinished[0].in_doubt);
    CHECK(found.problems.size() == 1);
    CHECK(fs::exists(dir.path / "routes" / (job.id() + ".route.damaged")));
}

TEST_CASE("a result owed to a peer: no mail here, owed until returned") {
    TempDir dir;
    const auto owed = finished(relayed_job(1, 1, {"alpha"}));
    const auto mailed = finished(make_job(2));
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        spool.store_job(owed, ignore);
        spool.store_job(mailed, ignore);
        io.run();
        io.restart();
        std::string error = "not called";
        spool.store_result(owed, "out", "err", "", "alpha",
                           [&](const std::string& e) { error = e; });
        spool.store_result(mailed, "out", "err", "mail", "", ignore);
        io.run();
        CHECK(error == "");
    }
    CHECK_FALSE(fs::exists(dir.path / "outbox" / (owed.id() + ".eml")));
    CHECK(fs::exists(dir.path / "outbox" / (mailed.id() + ".eml")));
    CHECK(count(dir.path / "batches", ".batch") == 0);

    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        auto found = spool.recover(week);
        CHECK(found.problems.empty());
        CHECK(found.unfinished.empty());
        CHECK(found.finished.size() == 2);
        CHECK(found.owed_returns.size() == 1);
        CHECK(found.owed_returns[owed.id()] ==
              std::vector<std::string>{"alpha"});

        // The output reads back whatever the result is owed to.
        std::string got_out, got_err;
        spool.load_output(owed.id(), [&](const std::string& e, std::string o,
                                         std::string r) {
            CHECK(e.empty());
            got_out = std::move(o);
            got_err = std::move(r);
        });
        io.run();
        io.restart();
        CHECK(got_out == "out");
        CHECK(got_err == "err");

        spool.mark_returned(owed.id(), "alpha");
        io.run(); // until the disk worker has touched the marker
    }
    CHECK(fs::exists(dir.path / "results" / (owed.id() + ".returned")));

    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    CHECK(found.problems.empty());
    CHECK(found.owed_returns.empty());
    CHECK(found.finished.size() == 2);
}

TEST_CASE("a result past its retention goes with its returned marker") {
    TempDir dir;
    auto old = finished(relayed_job(1, 1, {"alpha"}));
    old.report.finished = Clock::now() - std::chrono::hours{24 * 8};
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        spool.store_result(old, "", "", "", "alpha", ignore);
        io.run();
        io.restart();
        spool.mark_returned(old.id(), "alpha");
        io.run();
    }
    REQUIRE(fs::exists(dir.path / "results" / (old.id() + ".returned")));

    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    CHECK(found.finished.empty());
    CHECK(found.owed_returns.empty());
    CHECK(count(dir.path / "results", ".result") == 0);
    CHECK(count(dir.path / "results", ".returned") == 0);
}

TEST_CASE("a result owed to every peer that relayed the job, each once") {
    // Relayed in from alpha, then the same job from beta and gamma (a job
    // handed in at three origins): the debts to beta and gamma are on
    // disk before the job has a result, and outlive it.
    TempDir dir;
    auto job = relayed_job(1, 1, {"alpha"});
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        spool.store_job(job, ignore);
        job.owed_to = {"beta"};
        spool.store_debts(job, ignore);
        io.run();
    }
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        auto found = spool.recover(week);
        REQUIRE(found.unfinished.size() == 1);
        CHECK(found.unfinished[0].owed_to ==
              std::vector<std::string>{"beta"});
        CHECK(found.owed_returns.empty());

        job.owed_to = {"beta", "gamma"};
        spool.store_debts(job, ignore);
        io.run();
        io.restart();
        spool.store_result(finished(job), "out", "", "", "alpha", ignore);
        io.run();
        io.restart();
        spool.mark_returned(job.id(), "beta");
        io.run();
    }
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        auto found = spool.recover(week);
        CHECK(found.problems.empty());
        CHECK(found.unfinished.empty());
        CHECK(found.owed_returns[job.id()] ==
              std::vector<std::string>{"alpha", "gamma"});
        spool.mark_returned(job.id(), "alpha");
        spool.mark_returned(job.id(), "gamma");
        io.run();
    }
    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    CHECK(found.owed_returns.empty());
    CHECK(found.finished.size() == 1);
}

TEST_CASE("debts of a job that is gone go; damaged debts are set aside") {
    TempDir dir;
    auto kept = relayed_job(1, 1, {"alpha"});
    {
        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        spool.recover(week);
        spool.store_job(kept, ignore);
        io.run();
    }
    std::ofstream(dir.path / "debts" / "job-of-nobody-at-all.debts")
        << "cloudproto-debts 1\nPEER beta\n";
    std::ofstream(dir.path / "debts" / (kept.id() + ".debts"))
        << "cloudproto-debts 1\nPEER bad,name\n";

    asio::io_context io;
    Spool spool(io, dir.path, dir.path / "outbox");
    auto found = spool.recover(week);
    REQUIRE(found.unfinished.size() == 1);
    CHECK(found.unfinished[0].owed_to.empty());
    CHECK(found.problems.size() == 1);
    CHECK_FALSE(fs::exists(dir.path / "debts" / "job-of-nobody-at-all.debts"));
    CHECK(fs::exists(dir.path / "debts" / (kept.id() + ".debts.damaged")));
}

TEST_CASE("batch records with and without a route parse") {
    // As an older node wrote them (five words), and as this one writes a
    // relayed job (HOPS and TRACE after them).
    const std::string desc = "runtime = \"bash\"\n";
    const std::string script = "echo hi\n";
    const auto sizes =
        std::to_string(desc.size()) + " " + std::to_string(script.size());
    struct Row {
        std::string line;
        std::uint64_t hops;
        std::vector<std::string> trace;
    } rows[] = {
        {"JOB old-format-job-0001 1234 " + sizes, 0, {}},
        {"JOB relayed-job-000001 1234 " + sizes + " HOPS=2 TRACE=a,b", 2,
         {"a", "b"}},
        {"JOB relayed-job-000002 1234 " + sizes + " TRACE=a HOPS=1", 1,
         {"a"}},
        {"JOB unknown-param-0001 1234 " + sizes + " X-FUTURE=1", 0, {}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.line);
        TempDir dir;
        fs::create_directories(dir.path / "batches");
        std::ofstream(dir.path / "batches" / "00000000000000000007.batch",
                      std::ios::binary)
            << "cloudproto-batch 1\n"
            << row.line << '\n'
            << desc << script << '\n';

        asio::io_context io;
        Spool spool(io, dir.path, dir.path / "outbox");
        auto found = spool.recover(week);
        CHECK(found.problems.empty());
        REQUIRE(found.unfinished.size() == 1);
        const Job& job = found.unfinished[0];
        CHECK(job.id() == cloudproto::split_words(row.line)[1]);
        CHECK(job.report.accepted ==
              Clock::time_point{std::chrono::milliseconds{1234}});
        CHECK(job.descriptor_text == desc);
        CHECK(job.script == script);
        CHECK(job.route.hops == row.hops);
        CHECK(job.route.trace == row.trace);
        CHECK(job.relayed_in() == !row.trace.empty());

        // New batches are numbered after it.
        spool.store_job(make_job(1), ignore);
        io.run();
        CHECK(fs::exists(dir.path / "batches" / "00000000000000000008.batch"));
    }
}
