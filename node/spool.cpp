#include "node/spool.hpp"

#include "node/platform/durable_file.hpp"

#include "cloudproto/log.hpp"
#include "cloudproto/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace cloudnode {

namespace fs = std::filesystem;
using cloudproto::Clock;
using cloudproto::JobState;
using cloudproto::parse_decimal;
using cloudproto::split_words;

namespace {

constexpr std::string_view batch_magic = "cloudproto-batch 1\n";
constexpr std::string_view result_magic = "cloudproto-result 1\n";
constexpr std::string_view route_magic = "cloudproto-route 1\n";
constexpr std::string_view debts_magic = "cloudproto-debts 1\n";

std::string read_whole(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in)
        throw std::runtime_error("cannot read " + p.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Cuts the next '\n'-ended line off the front of `rest`.
bool next_line(std::string_view& rest, std::string_view& line) {
    auto nl = rest.find('\n');
    if (nl == std::string_view::npos)
        return false;
    line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    return true;
}

std::int64_t to_ms(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               t.time_since_epoch())
        .count();
}

// One job in a batch file:
//   JOB <id> <accepted-ms> <descriptor-octets> <script-octets>
//       [HOPS=<n> TRACE=<a,b>]\n          (one line; a relayed job)
//   <descriptor><script>\n
std::string batch_record(const Job& job) {
    std::string r =
        fmt::format("JOB {} {} {} {}", job.id(),
                    to_ms(job.report.accepted.value_or(Clock::now())),
                    job.descriptor_text.size(), job.script.size());
    if (job.relayed_in())
        r += ' ' + job.route.parameters();
    r += '\n';
    r += job.descriptor_text;
    r += job.script;
    r += '\n';
    return r;
}

std::vector<Job> parse_batch(std::string_view text) {
    if (text.substr(0, batch_magic.size()) != batch_magic)
        throw std::runtime_error("not a batch file");
    text.remove_prefix(batch_magic.size());

    std::vector<Job> jobs;
    std::string_view line;
    while (!text.empty()) {
        auto w = split_words(next_line(text, line) ? line : "");
        if (w.size() < 5 || w[0] != "JOB")
            throw std::runtime_error("damaged job record");
        auto ms = parse_decimal<std::int64_t>(w[2]);
        auto dsize = parse_decimal<std::size_t>(w[3]);
        auto ssize = parse_decimal<std::size_t>(w[4]);
        if (!ms || !dsize || !ssize || text.size() < *dsize + *ssize + 1 ||
            text[*dsize + *ssize] != '\n')
            throw std::runtime_error("damaged job record");
        Job job;
        job.report.job_id = std::string(w[1]);
        job.report.accepted = Clock::time_point{std::chrono::milliseconds{*ms}};
        job.descriptor_text = std::string(text.substr(0, *dsize));
        job.script = std::string(text.substr(*dsize, *ssize));
        text.remove_prefix(*dsize + *ssize + 1);
        for (std::size_t i = 5; i < w.size(); ++i) {
            std::string_view param = w[i];
            if (param.starts_with("HOPS="))
                job.route.hops =
                    parse_decimal<std::uint64_t>(param.substr(5)).value_or(0);
            else if (param.starts_with("TRACE="))
                job.route.trace = cloudproto::parse_trace(param.substr(6))
                                      .value_or(std::vector<std::string>{});
        }
        jobs.push_back(std::move(job));
    }
    return jobs;
}

// A result file: magic, the report's KEY value lines, DIGEST, RETURN-TO
// (a relayed job's result owed to that peer), PAYLOAD <out> <err>, then
// the octets.
std::string result_record(const Job& job, std::string_view out,
                          std::string_view err, std::string_view return_to) {
    std::string r(result_magic);
    for (const auto& f : job.report.to_fields())
        r += cloudproto::format_field(f) + '\n';
    r += fmt::format("DIGEST {}\n", job.digest);
    if (!return_to.empty())
        r += fmt::format("RETURN-TO {}\n", return_to);
    r += fmt::format("PAYLOAD {} {}\n", out.size(), err.size());
    r += out;
    r += err;
    return r;
}

struct ParsedResult {
    Job job;
    std::string return_to;
    std::size_t out_bytes = 0;
    std::size_t err_bytes = 0;
    std::string_view payload;
};

ParsedResult parse_result(std::string_view text) {
    if (text.substr(0, result_magic.size()) != result_magic)
        throw std::runtime_error("not a result file");
    text.remove_prefix(result_magic.size());

    ParsedResult p;
    std::vector<cloudproto::Field> fields;
    std::string_view line;
    while (next_line(text, line)) {
        auto w = split_words(line);
        if (w.size() == 2 && w[0] == "DIGEST") {
            p.job.digest = w[1];
        } else if (w.size() == 2 && w[0] == "RETURN-TO") {
            p.return_to = w[1];
        } else if (w.size() == 3 && w[0] == "PAYLOAD") {
            auto out = parse_decimal<std::size_t>(w[1]);
            auto err = parse_decimal<std::size_t>(w[2]);
            if (!out || !err || text.size() != *out + *err)
                throw std::runtime_error("damaged payload");
            p.out_bytes = *out;
            p.err_bytes = *err;
            p.payload = text;
            auto report = cloudproto::JobReport::from_fields(fields);
            if (!report)
                throw std::runtime_error("damaged report");
            p.job.report = std::move(*report);
            p.job.durable = true;
            return p;
        } else if (auto f = cloudproto::parse_field(line)) {
            fields.push_back(std::move(*f));
        }
    }
    throw std::runtime_error("no payload line");
}

std::string batch_name(std::uint64_t seq) {
    return fmt::format("{:020}.batch", seq);
}

std::string route_record(const Job& job) {
    return fmt::format("{}PEER {}\n", route_magic, job.relay_peer);
}

std::string parse_route(std::string_view text) {
    if (text.substr(0, route_magic.size()) != route_magic)
        throw std::runtime_error("not a route file");
    text.remove_prefix(route_magic.size());
    std::string_view line;
    auto w = split_words(next_line(text, line) ? line : "");
    if (w.size() != 2 || w[0] != "PEER" ||
        !cloudproto::is_valid_node_name(w[1]))
        throw std::runtime_error("damaged route");
    return w[1];
}

// The peers a result is owed to besides the route's sender.
std::string debts_record(const Job& job) {
    std::string r(debts_magic);
    for (const auto& peer : job.owed_to)
        r += fmt::format("PEER {}\n", peer);
    return r;
}

std::vector<std::string> parse_debts(std::string_view text) {
    if (text.substr(0, debts_magic.size()) != debts_magic)
        throw std::runtime_error("not a debts file");
    text.remove_prefix(debts_magic.size());
    std::vector<std::string> peers;
    std::string_view line;
    while (next_line(text, line)) {
        auto w = split_words(line);
        if (w.size() != 2 || w[0] != "PEER" ||
            !cloudproto::is_valid_node_name(w[1]))
            throw std::runtime_error("damaged debts");
        peers.emplace_back(w[1]);
    }
    return peers;
}

// The peers named in a ".returned" marker, one a line.
std::vector<std::string> parse_returned(const fs::path& p) {
    std::vector<std::string> peers;
    std::error_code ec;
    if (!fs::exists(p, ec))
        return peers;
    auto text = read_whole(p);
    std::string_view rest = text;
    std::string_view line;
    while (next_line(rest, line)) {
        if (!line.empty())
            peers.emplace_back(line);
    }
    return peers;
}

void add_debt(std::vector<std::string>& peers, std::string_view peer,
              const std::vector<std::string>& returned) {
    auto same = [peer](const std::string& p) {
        return cloudproto::same_node_name(p, peer);
    };
    if (std::none_of(peers.begin(), peers.end(), same) &&
        std::none_of(returned.begin(), returned.end(), same))
        peers.emplace_back(peer);
}

} // namespace

Spool::Spool(asio::io_context& io, fs::path dir, fs::path mail_dir)
    : dir_(std::move(dir)), mail_dir_(std::move(mail_dir)), worker_(io) {
    for (auto sub : {"batches", "routes", "results", "debts"})
        fs::create_directories(dir_ / sub);
    fs::create_directories(mail_dir_);
}

fs::path Spool::mail_path(const std::string& id) const {
    return mail_dir_ / (id + ".eml");
}

Spool::Recovered Spool::recover(std::chrono::hours retention) {
    Recovered r;
    auto set_aside = [&](const fs::path& p, const std::string& why) {
        std::error_code ec;
        auto bad = p;
        bad += ".damaged";
        fs::rename(p, bad, ec);
        r.problems.push_back(fmt::format("{}: {}", p.string(), why));
    };

    // Temporary files are writes that never completed: nothing was
    // promised for them.
    for (const auto& folder :
         {dir_ / "batches", dir_ / "routes", dir_ / "results", dir_ / "debts",
          mail_dir_}) {
        for (auto& e : fs::directory_iterator(folder)) {
            if (e.path().extension() == platform::temporary_suffix)
                fs::remove(e.path());
        }
    }

    // Finished jobs, forgotten once past their retention.
    std::map<std::string, bool> has_result;
    std::map<std::string, std::vector<std::string>> returned_to;
    auto oldest = Clock::now() - retention;
    for (auto& e : fs::directory_iterator(dir_ / "results")) {
        if (e.path().extension() != ".result")
            continue;
        try {
            auto text = read_whole(e.path());
            auto parsed = parse_result(text);
            auto& report = parsed.job.report;
            auto returned = e.path();
            returned.replace_extension(".returned");
            if (report.finished && *report.finished < oldest) {
                fs::remove(e.path());
                fs::remove(returned);
                fs::remove(dir_ / "debts" / (report.job_id + ".debts"));
                continue;
            }
            has_result[report.job_id] = true;
            auto& done = returned_to[report.job_id];
            done = parse_returned(returned);
            if (!parsed.return_to.empty()) {
                std::vector<std::string> owed;
                add_debt(owed, parsed.return_to, done);
                if (!owed.empty())
                    r.owed_returns[report.job_id] = owed;
            }
            r.finished.push_back(std::move(parsed.job));
        } catch (const std::exception& ex) {
            set_aside(e.path(), ex.what());
        }
    }

    // Batches, oldest first; jobs without a result run again.
    std::vector<fs::path> batches;
    for (auto& e : fs::directory_iterator(dir_ / "batches")) {
        if (e.path().extension() == ".batch")
            batches.push_back(e.path());
    }
    std::sort(batches.begin(), batches.end());
    for (const auto& path : batches) {
        auto seq =
            parse_decimal<std::uint64_t>(path.stem().string()).value_or(0);
        last_batch_ = std::max(last_batch_, seq);
        try {
            std::size_t unfinished = 0;
            for (auto& job : parse_batch(read_whole(path))) {
                if (has_result.count(job.id()))
                    continue;
                job.durable = true;
                batch_of_[job.id()] = seq;
                ++unfinished;
                r.unfinished.push_back(std::move(job));
            }
            if (unfinished == 0)
                fs::remove(path);
            else
                batch_unfinished_[seq] = unfinished;
        } catch (const std::exception& ex) {
            set_aside(path, ex.what());
        }
    }

    // Routes: where an unfinished job was being relayed; others are old.
    std::map<std::string, Job*> unfinished;
    for (auto& job : r.unfinished)
        unfinished[job.id()] = &job;
    for (auto& e : fs::directory_iterator(dir_ / "routes")) {
        if (e.path().extension() != ".route")
            continue;
        auto it = unfinished.find(e.path().stem().string());
        if (it == unfinished.end()) {
            fs::remove(e.path());
            continue;
        }
        try {
            it->second->relay_peer = parse_route(read_whole(e.path()));
            it->second->in_doubt = true; // whether it went is unknown
        } catch (const std::exception& ex) {
            set_aside(e.path(), ex.what());
        }
    }

    // Debts to other peers that relayed the same job: the unfinished job
    // keeps them for its result; a finished one owes what is not
    // returned; a job that is gone owes nothing.
    for (auto& e : fs::directory_iterator(dir_ / "debts")) {
        if (e.path().extension() != ".debts")
            continue;
        auto id = e.path().stem().string();
        auto job = unfinished.find(id);
        auto done = returned_to.find(id);
        if (job == unfinished.end() && done == returned_to.end()) {
            fs::remove(e.path());
            continue;
        }
        try {
            auto peers = parse_debts(read_whole(e.path()));
            if (job != unfinished.end()) {
                job->second->owed_to = std::move(peers);
                continue;
            }
            std::vector<std::string> owed = r.owed_returns[id];
            for (const auto& peer : peers)
                add_debt(owed, peer, done->second);
            if (owed.empty())
                r.owed_returns.erase(id);
            else
                r.owed_returns[id] = std::move(owed);
        } catch (const std::exception& ex) {
            set_aside(e.path(), ex.what());
        }
    }
    return r;
}

void Spool::store_job(const Job& job, Done done) {
    pending_jobs_.push_back({job.id(), batch_record(job), std::move(done)});
    if (!jobs_in_flight_)
        flush_jobs();
}

void Spool::flush_jobs() {
    // Everything waiting goes into one batch file and one flush.
    auto batch = std::make_shared<std::vector<PendingJob>>();
    batch->swap(pending_jobs_);
    auto seq = ++last_batch_;
    auto path = dir_ / "batches" / batch_name(seq);
    auto bytes = std::make_shared<std::string>(batch_magic);
    for (const auto& p : *batch)
        *bytes += p.record;

    jobs_in_flight_ = true;
    worker_.run(
        [path, bytes] {
            platform::FileWrite f{path, *bytes};
            platform::write_files_durably({&f, 1});
        },
        [this, batch, seq](const std::string& error) {
            jobs_in_flight_ = false;
            if (error.empty()) {
                batch_unfinished_[seq] = batch->size();
                for (const auto& p : *batch)
                    batch_of_[p.id] = seq;
            }
            for (const auto& p : *batch)
                p.done(error);
            if (!pending_jobs_.empty())
                flush_jobs();
        });
}

void Spool::store_route(const Job& job, Done done) {
    PendingWrite w{job.id(), {}, false, std::move(done)};
    w.files.emplace_back(dir_ / "routes" / (job.id() + ".route"),
                         route_record(job));
    write(std::move(w));
}

void Spool::store_result(const Job& job, std::string_view out,
                         std::string_view err, std::string_view mail,
                         std::string_view return_to, Done done) {
    // The mail goes in place before the result (same flush, earlier
    // rename): a crash between the two leaves a job that runs again and
    // rewrites the same mail, never a result whose mail is lost.
    PendingWrite w{job.id(), {}, true, std::move(done)};
    if (!mail.empty())
        w.files.emplace_back(mail_path(job.id()), std::string(mail));
    w.files.emplace_back(dir_ / "results" / (job.id() + ".result"),
                         result_record(job, out, err, return_to));
    write(std::move(w));
}

void Spool::write(PendingWrite w) {
    pending_writes_.push_back(std::move(w));
    if (!writes_in_flight_)
        flush_writes();
}

void Spool::flush_writes() {
    auto batch = std::make_shared<std::vector<PendingWrite>>();
    batch->swap(pending_writes_);
    auto files = std::make_shared<std::vector<platform::FileWrite>>();
    for (const auto& w : *batch) {
        for (const auto& [path, bytes] : w.files)
            files->push_back({path, bytes});
    }

    writes_in_flight_ = true;
    worker_.run([files] { platform::write_files_durably(*files); },
                [this, batch, files](const std::string& error) {
                    writes_in_flight_ = false;
                    for (const auto& w : *batch) {
                        if (error.empty() && w.finishes_job)
                            release(w.id);
                        w.done(error);
                    }
                    if (!pending_writes_.empty())
                        flush_writes();
                });
}

void Spool::store_debts(const Job& job, Done done) {
    PendingWrite w{job.id(), {}, false, std::move(done)};
    w.files.emplace_back(dir_ / "debts" / (job.id() + ".debts"),
                         debts_record(job));
    write(std::move(w));
}

void Spool::mark_returned(const std::string& id, const std::string& peer) {
    auto path = dir_ / "results" / (id + ".returned");
    worker_.run(
        [path, line = peer + '\n'] {
            std::ofstream marker(path, std::ios::binary | std::ios::app);
            marker << line;
        },
        {});
}

// The job has a result: its route goes, and its batch once no job in
// it lacks one.
void Spool::release(const std::string& id) {
    auto route = dir_ / "routes" / (id + ".route");
    worker_.run([route] { fs::remove(route); }, {});
    auto it = batch_of_.find(id);
    if (it == batch_of_.end())
        return;
    auto seq = it->second;
    batch_of_.erase(it);
    if (--batch_unfinished_[seq] > 0)
        return;
    batch_unfinished_.erase(seq);
    auto path = dir_ / "batches" / batch_name(seq);
    worker_.run([path] { fs::remove(path); }, {});
}

void Spool::load_output(const std::string& id, Loaded loaded) {
    auto path = dir_ / "results" / (id + ".result");
    auto out = std::make_shared<std::string>();
    auto err = std::make_shared<std::string>();
    worker_.run(
        [path, out, err] {
            auto text = read_whole(path);
            auto parsed = parse_result(text);
            *out = std::string(parsed.payload.substr(0, parsed.out_bytes));
            *err = std::string(parsed.payload.substr(parsed.out_bytes));
        },
        [loaded = std::move(loaded), out, err](const std::string& error) {
            loaded(error, std::move(*out), std::move(*err));
        });
}

} // namespace cloudnode
