// The result mail: one RFC 5322 / MIME message per finished job, ready
// for the outbox folder or, unchanged, for an SMTP client's DATA.
#pragma once

#include "cloudproto/descriptor.hpp"
#include "cloudproto/job_report.hpp"

#include <cstddef>
#include <string>
#include <string_view>

namespace cloudnode {

struct ResultMailSettings {
    std::string from;                  // the provider's sender address
    std::size_t inline_limit_bytes = 0; // longer output is attached
};

struct ResultMail {
    const cloudproto::JobReport& report;
    const cloudproto::Descriptor& descriptor;
    std::string_view out; // captured stdout (already capped)
    std::string_view err; // captured stderr
};

// The whole message, CRLF line ends, no line over 998 octets, headers
// that nothing from the job or the customer can add to.
std::string build_result_mail(const ResultMail& mail,
                              const ResultMailSettings& settings,
                              cloudproto::Clock::time_point now);

} // namespace cloudnode
