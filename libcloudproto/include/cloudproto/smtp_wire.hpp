// The octets of an SMTP session (RFC 5321) that need no connection:
// what a server's EHLO reply announces, and a message as DATA carries
// it. Replies themselves follow cloudproto's grammar (reply.hpp).
#pragma once

#include "cloudproto/reply.hpp"

#include <cstddef>
#include <set>
#include <string>
#include <string_view>

namespace cloudproto::smtp {

// RFC 5321 4.5.3.1.5 allows 512 octets in a reply line; some servers
// send longer ones, which cost nothing to read.
inline constexpr std::size_t max_reply_line_bytes = 4096;

// What EHLO announced: keywords in upper case, AUTH's mechanisms.
struct Extensions {
    std::set<std::string> keywords;
    std::set<std::string> auth;
};

// Reads the lines after the first of an EHLO reply, "AUTH=PLAIN LOGIN"
// (an older form) as "AUTH PLAIN LOGIN".
Extensions parse_ehlo(const Reply& ehlo);

// The message as DATA carries it: every line that begins with '.' gets
// another '.', line ends are CRLF, and ".\r\n" ends it.
std::string data_block(std::string_view message);

} // namespace cloudproto::smtp
