#include "cloudproto/reply.hpp"

#include "cloudproto/line_reader.hpp"
#include "cloudproto/protocol.hpp"

#include "support/octets.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace std::literals;
using cloudproto::LineEvent;
using cloudproto::LineReader;
using cloudproto::Reply;
using cloudproto::ReplyParser;

namespace {

const char* const vectors_path =
    CLOUDPROTO_SOURCE_DIR "/proto-spec/vectors/replies.txt";

using test_support::chunk_sizes;
using test_support::escape;
using test_support::whole;

std::string unescape(std::string_view text) {
    constexpr std::string_view letters = "rnt0\\\"";
    constexpr std::string_view octets = "\r\n\t\0\\\""sv;
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\') {
            out += text[i];
            continue;
        }
        if (++i == text.size())
            throw std::runtime_error("escape at the end of the text");

        if (std::size_t at = letters.find(text[i]); at != letters.npos) {
            out += octets[at];
        } else if (text[i] == 'x') {
            std::string hex(text.substr(i + 1, 2));
            if (hex.size() != 2 ||
                hex.find_first_not_of("0123456789abcdefABCDEF") !=
                    std::string::npos)
                throw std::runtime_error("bad \\x escape");
            out += static_cast<char>(std::stoi(hex, nullptr, 16));
            i += 2;
        } else {
            throw std::runtime_error("unknown escape \\" +
                                     std::string(1, text[i]));
        }
    }
    return out;
}

// An outcome written as replies.txt writes it, for a readable diff:
// `reply 250 "a" "b"`, `error` or `need-more`.
std::string describe(const Reply& reply) {
    std::string out = "reply " + std::to_string(reply.code);
    for (const std::string& line : reply.lines)
        out += " \"" + escape(line) + "\"";
    return out;
}

// Splits the expected outcome into its words and quoted strings, and
// writes it back the canonical way.
std::string canonical_outcome(std::string_view outcome) {
    if (outcome == "error" || outcome == "need-more")
        return std::string(outcome);
    if (!outcome.starts_with("reply "))
        throw std::runtime_error("unknown outcome: " + std::string(outcome));

    Reply reply;
    outcome.remove_prefix("reply "sv.size());
    reply.code = std::stoi(std::string(outcome.substr(0, 3)));
    outcome.remove_prefix(3);
    while (!outcome.empty()) {
        if (!outcome.starts_with(" \""))
            throw std::runtime_error("expected a quoted line");
        std::size_t end = 2;
        while (end < outcome.size() && outcome[end] != '"')
            end += outcome[end] == '\\' ? 2 : 1;
        if (end >= outcome.size())
            throw std::runtime_error("unterminated quoted line");
        reply.lines.push_back(unescape(outcome.substr(2, end - 2)));
        outcome.remove_prefix(end + 1);
    }
    return describe(reply);
}

// What a client makes of `wire` read in chunks of `chunk` octets: the
// first reply, or the first error, or need-more. Anything after the
// reply is reported too: a vector holds exactly one reply.
std::string run(std::string_view wire, std::size_t chunk) {
    LineReader reader(cloudproto::max_line_bytes);
    ReplyParser parser;
    std::string outcome = "need-more";
    for (std::size_t at = 0; at < wire.size(); at += chunk) {
        reader.append(wire.substr(at, chunk));
        for (LineEvent e = reader.next(); e.kind != LineEvent::Kind::need_more;
             e = reader.next()) {
            if (outcome != "need-more")
                return outcome + ", then more lines";
            if (e.kind == LineEvent::Kind::too_long)
                return "error";

            switch (parser.feed_line(e.text)) {
            case ReplyParser::Status::need_more:
                break;
            case ReplyParser::Status::complete:
                outcome = describe(parser.take());
                break;
            case ReplyParser::Status::error:
                CHECK_FALSE(parser.error().empty());
                return "error";
            }
        }
    }
    return outcome;
}

struct Vector {
    int line_number;
    std::string wire;
    std::string expected;
};

std::vector<Vector> read_vectors() {
    std::ifstream file(vectors_path, std::ios::binary);
    REQUIRE_MESSAGE(file, "cannot open " << vectors_path);

    std::vector<Vector> vectors;
    int line_number = 0;
    for (std::string line; std::getline(file, line);) {
        ++line_number;
        if (line.empty() || line.starts_with('#'))
            continue;
        std::size_t arrow = line.find(" => ");
        REQUIRE_MESSAGE(arrow != std::string::npos,
                        "replies.txt:" << line_number << ": no \" => \"");
        vectors.push_back({line_number, unescape(line.substr(0, arrow)),
                           canonical_outcome(line.substr(arrow + 4))});
    }
    return vectors;
}

// Feeds the lines of `wire` to a fresh parser, without a LineReader.
std::vector<ReplyParser::Status> feed(ReplyParser& parser,
                                      std::vector<std::string_view> lines) {
    std::vector<ReplyParser::Status> statuses;
    for (std::string_view line : lines)
        statuses.push_back(parser.feed_line(line));
    return statuses;
}

} // namespace

TEST_CASE("reply vectors of the spec, in every chunking") {
    std::vector<Vector> vectors = read_vectors();
    CHECK(vectors.size() >= 12);

    for (const Vector& v : vectors) {
        for (std::size_t chunk : chunk_sizes) {
            INFO("replies.txt:"
                 << v.line_number << ", chunks of "
                 << (chunk == whole ? "all" : std::to_string(chunk)));
            CHECK(run(v.wire, chunk) == v.expected);
        }
    }
}

TEST_CASE("encode_reply") {
    struct Case {
        int code;
        std::vector<std::string> lines;
        std::string_view wire;
    };
    const Case cases[] = {
        {250, {}, "250\r\n"},
        {250, {"ok"}, "250 ok\r\n"},
        {250, {""}, "250\r\n"},
        {250, {"a", "b"}, "250-a\r\n250 b\r\n"},
        {250, {"a", ""}, "250-a\r\n250\r\n"},
        {214, {"", "end of help"}, "214-\r\n214 end of help\r\n"},
        {550, {" spaced "}, "550  spaced \r\n"},
        {200, {"x"}, "200 x\r\n"},
        {599, {"x"}, "599 x\r\n"},
    };
    for (const Case& c : cases) {
        INFO("wire " << escape(c.wire));
        CHECK(cloudproto::encode_reply(c.code, c.lines) == c.wire);
        if (c.lines.size() <= 1) {
            std::string_view text =
                c.lines.empty() ? std::string_view{} : c.lines[0];
            CHECK(cloudproto::encode_reply(c.code, text) == c.wire);
        }
    }
}

TEST_CASE("encode_reply refuses what would break the framing") {
    const std::vector<std::string> with_cr = {"a", "b\rc"};
    const std::vector<std::string> with_lf = {"a\nb", "c"};
    CHECK_THROWS_AS(cloudproto::encode_reply(250, with_cr),
                    std::invalid_argument);
    CHECK_THROWS_AS(cloudproto::encode_reply(250, with_lf),
                    std::invalid_argument);
    CHECK_THROWS_AS(cloudproto::encode_reply(250, "x\r\n250 forged"sv),
                    std::invalid_argument);
    for (int code : {0, 199, 600, 1000, -250})
        CHECK_THROWS_AS(cloudproto::encode_reply(code, "x"sv),
                        std::invalid_argument);
}

TEST_CASE("encode_reply and ReplyParser agree") {
    const std::vector<std::vector<std::string>> replies = {
        {},
        {"ok"},
        {"node.example.org hello alice", "VERSION 1", "PIPELINING"},
        {"", "", ""},
        {"dash-in-text", "250 looks like a code", "\xc3\xa9"},
    };
    for (const auto& lines : replies) {
        std::string wire = cloudproto::encode_reply(421, lines);
        INFO("wire " << escape(wire));

        Reply expected{421,
                       lines.empty() ? std::vector<std::string>{""} : lines};
        for (std::size_t chunk : chunk_sizes)
            CHECK(run(wire, chunk) == describe(expected));
    }
}

TEST_CASE("ReplyParser: pipelined replies come out one by one") {
    LineReader reader(cloudproto::max_line_bytes);
    reader.append("250-a\r\n250 b\r\n221 node closing\r\n");
    ReplyParser parser;

    std::vector<std::string> replies;
    for (LineEvent e = reader.next(); e.kind == LineEvent::Kind::line;
         e = reader.next()) {
        if (parser.feed_line(e.text) == ReplyParser::Status::complete)
            replies.push_back(describe(parser.take()));
    }
    CHECK(replies == std::vector<std::string>{R"(reply 250 "a" "b")",
                                              R"(reply 221 "node closing")"});
}

TEST_CASE("ReplyParser: error() says what was wrong") {
    struct Case {
        std::vector<std::string_view> lines;
        std::string_view says;
    };
    const Case cases[] = {
        {{"600 x"}, "outside 200-599"},
        {{"25"}, "does not begin with a code"},
        {{"abc"}, "\"abc\""},
        {{"250x"}, "no '-' or ' '"},
        {{"250-a", "251 b"}, "code 251"},
        {{"250\x01\xff"}, "\\x01\\xff"}, // peer octets are escaped
    };
    for (const Case& c : cases) {
        ReplyParser parser;
        std::vector<ReplyParser::Status> statuses = feed(parser, c.lines);
        INFO("says " << c.says);
        CHECK(statuses.back() == ReplyParser::Status::error);
        CHECK(parser.error().find(c.says) != std::string::npos);
    }
}

TEST_CASE("ReplyParser: quotes at most a short piece of a bad line") {
    ReplyParser parser;
    std::string line = "x" + std::string(5000, 'y');
    CHECK(parser.feed_line(line) == ReplyParser::Status::error);
    CHECK(parser.error().size() < 200);
}

TEST_CASE("ReplyParser: a new reply starts after an error or a take()") {
    ReplyParser parser;
    CHECK(parser.feed_line("250-a") == ReplyParser::Status::need_more);
    CHECK(parser.feed_line("550 b") == ReplyParser::Status::error);

    CHECK(parser.feed_line("221 bye") == ReplyParser::Status::complete);
    CHECK(parser.error().empty());
    Reply reply = parser.take();
    CHECK(reply.code == 221);
    CHECK(reply.lines == std::vector<std::string>{"bye"});

    CHECK(parser.feed_line("250 again") == ReplyParser::Status::complete);
    CHECK(parser.take().lines == std::vector<std::string>{"again"});
}

TEST_CASE("ReplyParser: a complete reply must be taken first") {
    ReplyParser parser;
    CHECK(parser.feed_line("250 ok") == ReplyParser::Status::complete);
    CHECK_THROWS_AS(parser.feed_line("250 ok"), std::logic_error);
}

TEST_CASE("ReplyParser: a reply that never ends is cut off") {
    ReplyParser parser;
    ReplyParser::Status status = ReplyParser::Status::need_more;
    int lines = 0;
    while (status == ReplyParser::Status::need_more && lines < 100000) {
        status = parser.feed_line("250-again");
        ++lines;
    }
    CHECK(status == ReplyParser::Status::error);
    CHECK(lines <= 1000);
}

TEST_CASE("Reply: last line and the meaning of the first digit") {
    struct Case {
        int code;
        bool positive, transient, permanent;
    };
    const Case cases[] = {
        {214, true, false, false}, {250, true, false, false},
        {354, true, false, false}, {421, false, true, false},
        {450, false, true, false}, {500, false, false, true},
        {556, false, false, true},
    };
    for (const Case& c : cases) {
        INFO("code " << c.code);
        Reply reply{c.code, {}};
        CHECK(reply.positive() == c.positive);
        CHECK(reply.transient() == c.transient);
        CHECK(reply.permanent() == c.permanent);
    }

    CHECK(Reply{250, {}}.last_line().empty());
    CHECK(Reply{250, {"STATE running", "STATE done"}}.last_line() ==
          "STATE done");
}
