// Job identifiers, unique across the federation (proto-spec section
// "Job identifiers"). The customer's side chooses them, so that a retry
// after a lost reply names the same job.
#pragma once

#include <string>
#include <string_view>

namespace cloudproto {

// 16 to 64 octets of [A-Za-z0-9_-].
bool is_valid_job_id(std::string_view id);

// 128 random bits as 26 lower-case base32 characters.
std::string make_job_id();

} // namespace cloudproto
