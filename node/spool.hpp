// The node's durable store (proto-spec section "Custody"). Layout under
// the spool folder:
//
//   batches/<seq>.batch  jobs accepted together, written with one flush;
//                        removed once every job in it has a result
//   routes/<id>.route    the peer a job is being relayed to, written
//                        before RELAY goes out (proto-spec "Custody
//                        along a relay"); removed with the batch entry
//   results/<id>.result  a finished job's report and captured output,
//                        and the peer it is owed to if it was relayed in
//   results/<id>.returned  the peers that have it, one a line (no
//                        flush: a second RETURN is harmless)
//   debts/<id>.debts     other peers that relayed the same job and are
//                        owed its result too, written before their
//                        "already accepted"; kept as long as the result
//
// and the result mail, <id>.eml, in the mail folder it is given: the
// outbox when no mail server is configured (writing it there delivers
// it), or a queue that a mailer drains.
//
// Jobs (and results) that arrive while a flush is under way wait for the
// next one and share it: one flush for many hand-ins under load.
#pragma once

#include "node/disk_worker.hpp"
#include "node/job.hpp"

#include <asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace cloudnode {

class Spool {
public:
    // Empty: stored; otherwise why not, for the reply and the log.
    using Done = std::function<void(const std::string& error)>;

    Spool(asio::io_context& io, std::filesystem::path dir,
          std::filesystem::path mail_dir);

    // What start-up finds: jobs to run again, finished jobs to remember.
    // Call once, before anything else.
    struct Recovered {
        std::vector<Job> unfinished; // in the order they were accepted
        std::vector<Job> finished;   // report and digest only
        std::vector<std::string> problems; // files set aside, for the log
        // Results owed and not yet returned: job id -> peers.
        std::map<std::string, std::vector<std::string>> owed_returns;
    };
    Recovered recover(std::chrono::hours result_retention);

    // A job as accepted; a relayed one with its route (HOPS, TRACE).
    void store_job(const Job& job, Done done);

    // Records that `job` is about to go to its relay_peer.
    void store_route(const Job& job, Done done);

    // Stores the result and puts its mail (unless empty: a peer mailed
    // it) in the mail folder; `return_to` names the peer still owed the
    // result. Afterwards the job needs no batch or route. Writes that
    // arrive together (results, routes) share one flush.
    void store_result(const Job& job, std::string_view out,
                      std::string_view err, std::string_view mail,
                      std::string_view return_to, Done done);

    // Records that the result of `job` is owed to the peers in its
    // owed_to too (proto-spec "Results back to the origin").
    void store_debts(const Job& job, Done done);

    // The result of `id` reached `peer`, which it was owed to.
    void mark_returned(const std::string& id, const std::string& peer);

    using Loaded = std::function<void(const std::string& error,
                                      std::string out, std::string err)>;
    void load_output(const std::string& id, Loaded loaded);

    std::filesystem::path mail_path(const std::string& id) const;

private:
    struct PendingJob {
        std::string id;
        std::string record;
        Done done;
    };
    struct PendingWrite {
        std::string id;
        std::vector<std::pair<std::filesystem::path, std::string>> files;
        bool finishes_job; // its batch entry and route may go
        Done done;
    };

    void flush_jobs();
    void write(PendingWrite w);
    void flush_writes();
    void release(const std::string& id);

    std::filesystem::path dir_;
    std::filesystem::path mail_dir_;
    DiskWorker worker_;

    std::vector<PendingJob> pending_jobs_;
    bool jobs_in_flight_ = false;
    std::vector<PendingWrite> pending_writes_;
    bool writes_in_flight_ = false;

    std::uint64_t last_batch_ = 0;
    std::map<std::uint64_t, std::size_t> batch_unfinished_;
    std::map<std::string, std::uint64_t> batch_of_;
};

} // namespace cloudnode
