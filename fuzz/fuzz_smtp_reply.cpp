// Fuzzes the reading of a mail server's replies as the node's SMTP
// client does it (smtp_client.cpp): lines of up to
// smtp::max_reply_line_bytes, the reply grammar of reply.hpp, and for a
// 250 reply what EHLO announced (smtp::parse_ehlo).
#include "cloudproto/line_reader.hpp"
#include "cloudproto/reply.hpp"
#include "cloudproto/smtp_wire.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using cloudproto::LineEvent;
using cloudproto::LineReader;
using cloudproto::ReplyParser;

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_smtp_reply: %s\n", what);
        std::abort();
    }
}

// Keywords and mechanisms are compared in upper case, one word each.
bool is_upper_word(std::string_view word) {
    for (char c : word) {
        if ((c >= 'a' && c <= 'z') || c == ' ')
            return false;
    }
    return true;
}

void check_extensions(const cloudproto::smtp::Extensions& e) {
    for (const auto& keyword : e.keywords) {
        check(!keyword.empty(), "an empty keyword");
        check(is_upper_word(keyword), "a keyword not in upper case");
    }
    for (const auto& mechanism : e.auth)
        check(is_upper_word(mechanism), "a mechanism not in upper case");
    check(e.auth.empty() || e.keywords.count("AUTH") == 1,
          "mechanisms without AUTH");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
    LineReader lines(cloudproto::smtp::max_reply_line_bytes);
    lines.append({reinterpret_cast<const char*>(data), size});
    ReplyParser parser;

    // As the client: an over-long line or a malformed reply ends the
    // transaction.
    for (;;) {
        LineEvent event = lines.next();
        if (event.kind != LineEvent::Kind::line)
            break;
        auto status = parser.feed_line(event.text);
        if (status == ReplyParser::Status::error)
            break;
        if (status == ReplyParser::Status::need_more)
            continue;

        auto reply = parser.take();
        if (reply.code == 250)
            check_extensions(cloudproto::smtp::parse_ehlo(reply));
    }
    return 0;
}
