// The slots' uids (uid layer), held by one node alone. A node kills
// everything a slot's uid runs when a job ends, so two nodes sharing a
// uid would kill each other's jobs, and a uid that is someone's would
// have them killed too.
#pragma once

#include <cstddef>

#include <sys/types.h>

namespace cloudnode::platform::slot_uids {

// Where the nodes of one machine record the uids they hold: byte u of
// this file, locked, is uid u (open file description locks, which the
// kernel drops when their holder dies).
inline constexpr const char* lock_folder = "/run/cloudproto";
inline constexpr const char* lock_file = "/run/cloudproto/slot-uids.lock";

// Takes uids [first, first + count) for this process, as long as the
// returned descriptor stays open. Throws SettingsError when another
// running node holds one of them, when one is a user's or a group's
// in the passwd or group database, or when a process runs as one;
// std::runtime_error when the lock file cannot be used.
int claim(uid_t first, std::size_t count);

} // namespace cloudnode::platform::slot_uids
