// The node as the subreaper of its jobs (see job_process_posix.cpp).
// Each job runs under a shepherd, itself a subreaper, that kills what
// the job leaves. A job that can signal its shepherd (level 1: same
// uid) may kill it; the shepherd's orphans then come to the node,
// which kills and reaps them here. Every child of the node is a
// shepherd it knows: any other child is a job's escapee.
#pragma once

#include <asio/io_context.hpp>

#include <mutex>

#include <sys/types.h>

namespace cloudnode::platform::subreaper {

// Makes this process the child subreaper of its descendants; once per
// process, from the first job on.
void become();

// Held while a shepherd is forked and recorded, so that a sweep on
// another thread never takes it for a stranger in between.
std::unique_lock<std::mutex> hold_shepherds();

// With hold_shepherds() held.
void add_shepherd(pid_t pid);

// Once the shepherd is reaped.
void forget_shepherd(pid_t pid);

// SIGKILLs every child of this process that is not a known shepherd,
// with the process group it leads. Each is reaped on `io` once it has
// ended, by its own pid (a shepherd's exit status stays for its
// JobProcess), and the children are looked at again then: the dead
// one's orphans are ours by that time.
void kill_strangers(asio::io_context& io);

} // namespace cloudnode::platform::subreaper
