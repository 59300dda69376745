#include "cloudproto/smtp_wire.hpp"

#include "cloudproto/line_reader.hpp"
#include "cloudproto/reply.hpp"

#include "support/octets.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace std::literals;
using cloudproto::LineEvent;
using cloudproto::LineReader;
using cloudproto::Reply;
using cloudproto::ReplyParser;
using cloudproto::smtp::data_block;
using cloudproto::smtp::parse_ehlo;
using test_support::chunk_sizes;
using test_support::escape;

namespace {

// --- DATA -----------------------------------------------------------

// What a server keeps of a block (RFC 5321 4.5.2): each line's first
// dot goes, up to the line "." that ends it; "" when the block is not
// ended by exactly that line.
std::string unstuffed(std::string_view block) {
    std::string out;
    while (!block.empty()) {
        auto crlf = block.find("\r\n");
        if (crlf == std::string_view::npos)
            return "";
        auto line = block.substr(0, crlf);
        block.remove_prefix(crlf + 2);
        if (line == ".")
            return block.empty() ? out : "";
        if (line.starts_with('.'))
            line.remove_prefix(1);
        out.append(line);
        out += "\r\n";
    }
    return "";
}

// The message with every line end (CRLF, LF, CR alone) made CRLF, and
// its last line ended.
std::string with_crlf(std::string_view message) {
    std::string out;
    for (std::size_t i = 0; i < message.size(); ++i) {
        if (message[i] == '\r' || message[i] == '\n') {
            out += "\r\n";
            if (message[i] == '\r' && i + 1 < message.size() &&
                message[i + 1] == '\n')
                ++i;
        } else {
            out += message[i];
        }
    }
    if (!out.empty() && !out.ends_with("\r\n"))
        out += "\r\n";
    return out;
}

bool has_bare_cr_or_lf(std::string_view block) {
    for (std::size_t i = 0; i < block.size(); ++i) {
        bool crlf = block[i] == '\r' && i + 1 < block.size() &&
                    block[i + 1] == '\n';
        if (block[i] == '\r' && !crlf)
            return true;
        if (block[i] == '\n' && (i == 0 || block[i - 1] != '\r'))
            return true;
    }
    return false;
}

// --- replies --------------------------------------------------------

// One thing the client reads: a whole reply, a line that breaks the
// grammar, or a line over max_reply_line_bytes.
struct Read {
    enum class Kind { reply, error, too_long };
    Kind kind = Kind::reply;
    int code = 0;
    std::vector<std::string> lines;

    bool operator==(const Read&) const = default;
};

std::string describe(const std::vector<Read>& reads) {
    std::string out;
    for (const auto& r : reads) {
        if (r.kind == Read::Kind::error)
            out += "error; ";
        else if (r.kind == Read::Kind::too_long)
            out += "too_long; ";
        else {
            out += std::to_string(r.code);
            for (const auto& line : r.lines)
                out += " [" + escape(line) + "]";
            out += "; ";
        }
    }
    return out;
}

// The server's octets arriving `chunk` at a time, read as the SMTP
// client reads them: lines of at most max_reply_line_bytes, assembled
// into replies.
std::vector<Read> read_replies(std::string_view octets, std::size_t chunk) {
    LineReader lines(cloudproto::smtp::max_reply_line_bytes);
    ReplyParser parser;
    std::vector<Read> reads;
    for (std::size_t at = 0; at < octets.size(); at += chunk) {
        lines.append(octets.substr(at, chunk));
        for (LineEvent ev = lines.next(); ev.kind != LineEvent::Kind::need_more;
             ev = lines.next()) {
            if (ev.kind == LineEvent::Kind::too_long) {
                reads.push_back({Read::Kind::too_long, 0, {}});
                continue;
            }
            auto status = parser.feed_line(ev.text);
            if (status == ReplyParser::Status::error)
                reads.push_back({Read::Kind::error, 0, {}});
            if (status == ReplyParser::Status::complete) {
                Reply r = parser.take();
                reads.push_back({Read::Kind::reply, r.code, r.lines});
            }
        }
        if (chunk == test_support::whole)
            break;
    }
    return reads;
}

Read reply(int code, std::vector<std::string> lines) {
    return {Read::Kind::reply, code, std::move(lines)};
}

const Read error{Read::Kind::error, 0, {}};
const Read too_long{Read::Kind::too_long, 0, {}};

} // namespace

TEST_CASE("a DATA block is dot-stuffed, in CRLF lines, and ended once") {
    struct Row {
        std::string message;
        std::string block;
    } rows[] = {
        {"", ".\r\n"},
        {"a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
        {"a\nb\n", "a\r\nb\r\n.\r\n"},
        {"no line end", "no line end\r\n.\r\n"},
        {".\r\n", "..\r\n.\r\n"},
        {"..\r\n", "...\r\n.\r\n"},
        {".leading\r\n", "..leading\r\n.\r\n"},
        {"a.b .c\r\n", "a.b .c\r\n.\r\n"},
        {"x\r\n.", "x\r\n..\r\n.\r\n"},
        {"\n.\n", "\r\n..\r\n.\r\n"},
        {"a\r\n.\r\nMAIL FROM:<evil@example.org>\r\n",
         "a\r\n..\r\nMAIL FROM:<evil@example.org>\r\n.\r\n"},
        {"lone\rcr\r\n", "lone\r\ncr\r\n.\r\n"},
        {"lone\r.dot", "lone\r\n..dot\r\n.\r\n"},
        {"end\r", "end\r\n.\r\n"},
        {"\r\r\n", "\r\n\r\n.\r\n"},
        {"\r\n\r\n", "\r\n\r\n.\r\n"},
        {"nul \0 ff \xff\r\n"s, "nul \0 ff \xff\r\n.\r\n"s},
        {"UTF-8: \xc3\xa9\r\n", "UTF-8: \xc3\xa9\r\n.\r\n"},
        {std::string(5000, 'x'), std::string(5000, 'x') + "\r\n.\r\n"},
    };
    for (const auto& row : rows) {
        CAPTURE(escape(row.message));
        CHECK(escape(data_block(row.message)) == escape(row.block));
    }
}

TEST_CASE("a DATA block gives the message back, line ends aside") {
    // Every message of up to 6 octets from an alphabet of line ends,
    // dots and text: nothing a job prints ends the block early.
    constexpr std::string_view alphabet = ".\r\na\0"sv;
    std::vector<std::string> messages{""};
    for (std::size_t length = 1, from = 0; length <= 6; ++length) {
        std::size_t to = messages.size();
        for (std::size_t i = from; i < to; ++i)
            for (char c : alphabet)
                messages.push_back(messages[i] + c);
        from = to;
    }
    for (const auto& message : messages) {
        auto block = data_block(message);
        CAPTURE(escape(message));
        CHECK_FALSE(has_bare_cr_or_lf(block));
        CHECK(block.ends_with("\r\n.\r\n") == !message.empty());
        CHECK(unstuffed(block) == with_crlf(message));
    }
}

TEST_CASE("mail server replies read alike however they are cut") {
    const std::string long_line = "250 " + std::string(5000, 'x') + "\r\n";
    struct Row {
        std::string octets;
        std::vector<Read> reads;
    } rows[] = {
        {"220 mail.example ESMTP\r\n", {reply(220, {"mail.example ESMTP"})}},
        {"220-mail.example ESMTP\r\n220-a multi-line greeting\r\n"
         "220 welcome\r\n",
         {reply(220,
                {"mail.example ESMTP", "a multi-line greeting", "welcome"})}},
        {"250-mail.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
         "250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
         {reply(250, {"mail.example", "PIPELINING", "SIZE 10240000",
                      "STARTTLS", "AUTH PLAIN LOGIN", "8BITMIME"})}},
        {"250\r\n", {reply(250, {""})}},
        {"250 ok\n", {reply(250, {"ok"})}},
        {"354 go ahead\r\n250 2.0.0 queued as 1\r\n",
         {reply(354, {"go ahead"}), reply(250, {"2.0.0 queued as 1"})}},
        {"334 VXNlcm5hbWU6\r\n", {reply(334, {"VXNlcm5hbWU6"})}},
        {"421 4.3.2 closing\r\n", {reply(421, {"4.3.2 closing"})}},
        {"550-5.1.1 no such\r\n550 5.1.1 user\r\n",
         {reply(550, {"5.1.1 no such", "5.1.1 user"})}},
        // Broken grammar: the client ends the session at the first error
        {"250-a\r\n251 b\r\n", {error}},
        {"25\r\n", {error}},
        {"250x\r\n", {error}},
        {"2500 ok\r\n", {error}},
        {"abc ok\r\n", {error}},
        {"099 too low\r\n", {error}},
        {"\r\n", {error}},
        {long_line + "250 ok\r\n", {too_long, reply(250, {"ok"})}},
    };
    for (const auto& row : rows) {
        CAPTURE(escape(row.octets));
        for (std::size_t chunk : chunk_sizes) {
            CAPTURE(chunk);
            auto reads = read_replies(row.octets, chunk);
            CHECK_MESSAGE(reads == row.reads, describe(reads));
        }
    }
}

TEST_CASE("an EHLO reply's keywords and AUTH mechanisms") {
    using Set = std::set<std::string>;
    struct Row {
        std::vector<std::string> lines;
        Set keywords;
        Set auth;
    } rows[] = {
        {{"mail.example", "PIPELINING", "starttls", "AUTH PLAIN LOGIN",
          "SIZE 1000"},
         {"PIPELINING", "STARTTLS", "AUTH", "SIZE"},
         {"PLAIN", "LOGIN"}},
        {{"mail.example", "AUTH=PLAIN LOGIN"}, {"AUTH"}, {"PLAIN", "LOGIN"}},
        {{"mail.example", "auth login cram-md5"}, {"AUTH"},
         {"LOGIN", "CRAM-MD5"}},
        {{"mail.example", "  STARTTLS  "}, {"STARTTLS"}, {}},
        {{"mail.example", "", "   "}, {}, {}},
        // The first line is the server's name and greeting, nothing more
        {{"mail.example STARTTLS AUTH PLAIN"}, {}, {}},
        {{"mail.example"}, {}, {}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.lines.size());
        CAPTURE(row.lines.back());
        Reply ehlo{250, row.lines};
        auto e = parse_ehlo(ehlo);
        CHECK(e.keywords == row.keywords);
        CHECK(e.auth == row.auth);
    }
}
