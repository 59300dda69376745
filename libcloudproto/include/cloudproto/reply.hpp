// Reply lines: three-digit code, '-' on all but the last line
// (proto-spec section "Replies").
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cloudproto {

struct Reply {
    int code = 0;
    std::vector<std::string> lines; // text after "NNN-" / "NNN ", per line

    std::string_view last_line() const;
    bool positive() const { return code >= 200 && code < 400; }
    bool transient() const { return code >= 400 && code < 500; }
    bool permanent() const { return code >= 500; }
};

// "250-a\r\n250 b\r\n"; an empty `lines` gives "250\r\n".
std::string encode_reply(int code, std::span<const std::string> lines);
std::string encode_reply(int code, std::string_view text);

// Assembles a reply from lines (as LineReader gives them).
class ReplyParser {
public:
    enum class Status { need_more, complete, error };

    Status feed_line(std::string_view line);

    // The reply completed by the last feed_line; resets the parser.
    Reply take();

    // After Status::error: what was wrong, for a log line.
    const std::string& error() const { return error_; }

private:
    Reply partial_;
    std::string error_;
    bool complete_ = false; // partial_ holds a whole reply, not yet taken
};

} // namespace cloudproto
