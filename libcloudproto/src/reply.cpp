#include "cloudproto/reply.hpp"

#include <fmt/format.h>

#include <iterator>
#include <stdexcept>

namespace cloudproto {

namespace {

constexpr int min_reply_code = 200;
constexpr int max_reply_code = 599;

// A server that never sends the final line must not make a client
// hold unbounded memory; the longest v1 reply (HELLO) has about ten.
constexpr std::size_t max_reply_lines = 1000;

// How much of a peer's line an error message quotes.
constexpr std::size_t max_quoted_bytes = 64;

// Peer octets for an error message: quoted, escaped and capped, so
// that the message is safe on one log line.
std::string quote_peer(std::string_view octets) {
    std::string out = "\"";
    for (unsigned char c : octets.substr(0, max_quoted_bytes)) {
        if (c == '"' || c == '\\')
            out += fmt::format("\\{}", static_cast<char>(c));
        else if (c >= 0x20 && c < 0x7f)
            out += static_cast<char>(c);
        else
            out += fmt::format("\\x{:02x}", c);
    }
    out += octets.size() > max_quoted_bytes ? "\"..." : "\"";
    return out;
}

// Both are bugs of the caller, not of a peer: a code outside the norm,
// or a CR or LF that would end the line early and let the rest of the
// text pass for a reply of its own.
void check_encodable(int code, std::string_view text) {
    if (code < min_reply_code || code > max_reply_code)
        throw std::invalid_argument(
            fmt::format("reply code {} is outside 200-599", code));
    if (text.find_first_of("\r\n") != std::string_view::npos)
        throw std::invalid_argument("reply text holds a CR or LF");
}

// A final line with no text is the bare code, without a trailing space.
void append_line(std::string& out, int code, bool final,
                 std::string_view text) {
    check_encodable(code, text);
    auto sink = std::back_inserter(out);
    if (final && text.empty())
        fmt::format_to(sink, "{}\r\n", code);
    else
        fmt::format_to(sink, "{}{}{}\r\n", code, final ? ' ' : '-', text);
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

} // namespace

std::string_view Reply::last_line() const {
    return lines.empty() ? std::string_view{} : std::string_view{lines.back()};
}

std::string encode_reply(int code, std::span<const std::string> lines) {
    std::string out;
    if (lines.empty()) {
        append_line(out, code, true, {});
        return out;
    }
    for (std::size_t i = 0; i < lines.size(); ++i)
        append_line(out, code, i + 1 == lines.size(), lines[i]);
    return out;
}

std::string encode_reply(int code, std::string_view text) {
    std::string out;
    append_line(out, code, true, text);
    return out;
}

// need_more: a continuation line was added. complete: the final line
// came; take() the reply. error: the line breaks the reply grammar;
// the partial reply is dropped and the next line starts a new one
// (a client will usually close the connection instead).
ReplyParser::Status ReplyParser::feed_line(std::string_view line) {
    if (complete_)
        throw std::logic_error("ReplyParser: take() the reply first");
    if (partial_.lines.empty())
        error_.clear();

    auto fail = [this](std::string why) {
        partial_ = {};
        error_ = std::move(why);
        return Status::error;
    };

    // The code
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) ||
        !is_digit(line[2]))
        return fail(fmt::format("reply line {} does not begin with a code",
                                quote_peer(line)));
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code < min_reply_code || code > max_reply_code)
        return fail(fmt::format("reply code {} is outside 200-599", code));
    if (!partial_.lines.empty() && code != partial_.code)
        return fail(fmt::format("reply line {} has code {}, the reply {}",
                                partial_.lines.size() + 1, code,
                                partial_.code));

    // What follows it: '-' for more lines, ' ' or nothing for the last
    bool final = true;
    std::string_view text;
    if (line.size() > 3) {
        if (line[3] != '-' && line[3] != ' ')
            return fail(fmt::format("reply line {} has no '-' or ' ' after "
                                    "its code",
                                    quote_peer(line)));
        final = line[3] == ' ';
        text = line.substr(4);
    }
    if (!final && partial_.lines.size() + 1 >= max_reply_lines)
        return fail(
            fmt::format("reply has more than {} lines", max_reply_lines));

    partial_.code = code;
    partial_.lines.emplace_back(text);
    complete_ = final;
    return final ? Status::complete : Status::need_more;
}

Reply ReplyParser::take() {
    Reply reply = std::move(partial_);
    partial_ = {};
    complete_ = false;
    return reply;
}

} // namespace cloudproto
