// What a slot's uid leaves in the machine's shared places, removed once
// its job is over. With the uid layer and no namespaces (level 2) a job
// shares /tmp, /var/tmp, /dev/shm and the System V IPC objects with the
// machine, and so with the next job of its slot, which runs as the
// same uid. Runs in the shepherd (async-signal-safe: no allocation),
// after every process of the job is gone.
#pragma once

#include <sys/types.h>

namespace cloudnode::platform::leftovers {

// Forks a child that becomes `uid` and `gid`, with no privilege, and
// removes what it owns at the top of each shared folder (whole folders
// included, never following a link nor crossing into another mount,
// within a bound on depth and entries) and every System V message
// queue, semaphore set and shared memory segment it may remove; then
// waits for it. Being the uid, the child can remove nothing that is not
// the uid's to remove, whatever the job left in its way.
void remove(uid_t uid, gid_t gid);

} // namespace cloudnode::platform::leftovers
