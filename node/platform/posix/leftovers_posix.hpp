// What a slot's uid leaves in the machine's shared places, removed once
// its job is over. With the uid layer and no namespaces (level 2) a job
// shares /tmp, /var/tmp, /dev/shm and the System V IPC objects with the
// machine, and so with the next job of its slot, which runs as the
// same uid. Runs in the shepherd (async-signal-safe: no allocation),
// after every process of the job is gone.
#pragma once

#include <ctime>

#include <sys/types.h>

namespace cloudnode::platform::leftovers {

// The shared folders as they were when a job started: one that has not
// changed since holds nothing new, and is not read again.
struct Snapshot {
    timespec taken{};
    timespec modified[8]{};
};

// Taken before the job's first process starts.
Snapshot snapshot();

// When `uid` owns anything in a shared folder changed since `before`
// or in an IPC object (the caller only looks: most jobs leave nothing,
// and then no child is needed), forks a child that becomes `uid` and `gid`, with no
// privilege, and removes what the uid owns at the top of each shared
// folder (whole folders included, never following a link nor crossing
// into another mount, within a bound on depth and entries) and every
// System V message queue, semaphore set and shared memory segment it
// may remove; then waits for it. Being the uid, the child can remove
// nothing that is not the uid's to remove, whatever the job left in
// its way.
void remove(uid_t uid, gid_t gid, const Snapshot& before);

} // namespace cloudnode::platform::leftovers
