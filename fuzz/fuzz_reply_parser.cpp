// Fuzzes ReplyParser (reply.hpp) on a stream of reply lines cut as a
// client cuts them (LineReader, max_line_bytes). Every reply it
// completes must have a code the norm allows, encode back with
// encode_reply, and parse again to itself; every error message must be
// fit for one log line.
#include "cloudproto/line_reader.hpp"
#include "cloudproto/protocol.hpp"
#include "cloudproto/reply.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using cloudproto::LineEvent;
using cloudproto::LineReader;
using cloudproto::Reply;
using cloudproto::ReplyParser;

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_reply_parser: %s\n", what);
        std::abort();
    }
}

bool printable_ascii(std::string_view text) {
    for (unsigned char c : text) {
        if (c < 0x20 || c > 0x7e)
            return false;
    }
    return true;
}

bool holds_cr(const Reply& reply) {
    for (const auto& line : reply.lines) {
        if (line.find('\r') != std::string::npos)
            return true;
    }
    return false;
}

// encode_reply() then the parser again: the same reply comes back.
void check_round_trip(const Reply& reply) {
    std::string wire = cloudproto::encode_reply(reply.code, reply.lines);
    LineReader lines(wire.size() + 1);
    lines.append(wire);
    ReplyParser parser;
    for (;;) {
        LineEvent event = lines.next();
        check(event.kind == LineEvent::Kind::line, "encoded reply ends early");
        auto status = parser.feed_line(event.text);
        check(status != ReplyParser::Status::error, "encoded reply refused");
        if (status == ReplyParser::Status::complete)
            break;
    }
    Reply again = parser.take();
    check(again.code == reply.code && again.lines == reply.lines,
          "reply changed on its way through encode_reply");
    check(lines.buffered() == 0, "encoded reply has octets after its end");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
    LineReader lines(cloudproto::max_line_bytes);
    lines.append({reinterpret_cast<const char*>(data), size});
    ReplyParser parser;

    for (;;) {
        LineEvent event = lines.next();
        if (event.kind == LineEvent::Kind::need_more)
            break;
        if (event.kind == LineEvent::Kind::too_long)
            continue; // a client gives up here; the parser never sees it

        auto status = parser.feed_line(event.text);
        if (status == ReplyParser::Status::error) {
            check(!parser.error().empty(), "an error without a message");
            check(printable_ascii(parser.error()),
                  "error message holds unprintable octets");
            check(parser.error().size() < 300, "error message too long");
            continue;
        }
        if (status == ReplyParser::Status::need_more)
            continue;

        Reply reply = parser.take();
        check(reply.code >= 200 && reply.code <= 599, "code out of range");
        check(!reply.lines.empty(), "a reply without lines");
        check(reply.last_line() == reply.lines.back(), "last_line() wrong");
        // A CR inside a line's text is kept, and encode_reply refuses it.
        if (!holds_cr(reply))
            check_round_trip(reply);
    }
    return 0;
}
