#include "cloudproto/line_reader.hpp"

#include "cloudproto/protocol.hpp"

#include "support/octets.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace std::literals;
using cloudproto::LineEvent;
using cloudproto::LineReader;

namespace {

using test_support::chunk_sizes;
using test_support::escape;
using test_support::whole;

// Gives a chunk to the reader as a socket read would (prepare more
// than arrives, commit what did) or through append(), in turn, so that
// both ways are fed every input.
void put(LineReader& reader, std::string_view chunk, bool by_append) {
    if (by_append) {
        reader.append(chunk);
        return;
    }
    std::span<char> room =
        reader.prepare(std::max<std::size_t>(512, chunk.size()));
    if (room.size() < chunk.size())
        throw std::logic_error("prepare() gave too little room");
    std::copy(chunk.begin(), chunk.end(), room.begin());
    reader.commit(chunk.size());
}

// What a session does with the reader, written down as it happens:
// `line "text"`, `too_long`, and `payload "octets"` for the octets a
// line "PAYLOAD <n>" announces (as SUBMIT and RESULT do).
class Session {
public:
    explicit Session(std::size_t max_line_bytes) : reader_(max_line_bytes) {}

    void feed(std::string_view chunk) {
        put(reader_, chunk, by_append_);
        by_append_ = !by_append_;
        drain();
    }

    std::string events() const { return events_; }
    const LineReader& reader() const { return reader_; }

private:
    void drain() {
        for (;;) {
            if (payload_left_ > 0) {
                payload_left_ -= reader_.take(payload_left_, payload_);
                if (payload_left_ > 0)
                    return;
                record("payload \"" + escape(payload_) + "\"");
            }

            LineEvent event = reader_.next();
            if (event.kind == LineEvent::Kind::need_more)
                return;
            if (event.kind == LineEvent::Kind::too_long) {
                record("too_long");
                continue;
            }
            record("line \"" + escape(event.text) + "\"");
            start_payload(event.text);
        }
    }

    void start_payload(std::string_view line) {
        if (!line.starts_with("PAYLOAD "))
            return;
        line.remove_prefix("PAYLOAD "sv.size());
        std::from_chars(line.data(), line.data() + line.size(), payload_left_);
        payload_.clear();
        if (payload_left_ == 0)
            record("payload \"\"");
    }

    void record(const std::string& event) {
        events_ += events_.empty() ? "" : ", ";
        events_ += event;
    }

    LineReader reader_;
    bool by_append_ = false;
    std::size_t payload_left_ = 0;
    std::string payload_;
    std::string events_;
};

// Feeds `input` in chunks of `chunk` octets; checks after every chunk
// that the reader holds less than one line's worth when it asks for
// more, whatever arrives (this is what bounds its memory).
std::string run(std::string_view input, std::size_t max_line_bytes,
                std::size_t chunk) {
    Session session(max_line_bytes);
    bool bounded = true;
    for (std::size_t at = 0; at < input.size(); at += chunk) {
        session.feed(input.substr(at, chunk));
        bounded = bounded && session.reader().buffered() < max_line_bytes;
    }
    CHECK(bounded);
    return session.events();
}

struct Case {
    std::string what;
    std::string input;
    std::size_t max_line_bytes;
    std::string expected;
};

std::string repeat(char c, std::size_t n) {
    return std::string(n, c);
}

std::vector<Case> cases() {
    constexpr std::size_t limit = 10; // short lines keep the table legible
    constexpr std::size_t roomy = 20; // room for "PAYLOAD <n>" lines
    constexpr std::size_t max = cloudproto::max_line_bytes;
    const std::string mib_line = repeat('x', 1024 * 1024);

    return {
        {"CRLF ends a line", "abc\r\n", limit, R"(line "abc")"},
        {"bare LF ends a line", "abc\n", limit, R"(line "abc")"},
        {"mixed ends", "a\r\nb\nc\r\n", limit,
         R"(line "a", line "b", line "c")"},
        {"empty lines", "\r\n\n", limit, R"(line "", line "")"},
        {"no LF yet", "abc", limit, ""},
        {"CR alone is text", "a\rb\r\n", limit, R"(line "a\rb")"},
        {"CR at the end waits for LF", "abc\r", limit, ""},
        {"only the CR before LF goes", "a\r\r\n", limit, R"(line "a\r")"},
        {"CR LF CR LF", "\r\n\r\n", limit, R"(line "", line "")"},
        {"LF CR LF", "\n\r\n", limit, R"(line "", line "")"},
        {"NUL inside a line", "a\0b\r\n"s, limit, R"(line "a\0b")"},
        {"octets >= 0x80 pass", "\xc3\xa9\xff\r\n", limit,
         R"(line "\xc3\xa9\xff")"},

        // The limit counts CRLF or LF
        {"at limit with CRLF", repeat('a', 8) + "\r\n", limit,
         R"(line "aaaaaaaa")"},
        {"at limit with LF", repeat('a', 9) + "\n", limit,
         R"(line "aaaaaaaaa")"},
        {"one over with CRLF", repeat('a', 9) + "\r\nok\r\n", limit,
         R"(too_long, line "ok")"},
        {"one over with LF", repeat('a', 10) + "\nok\n", limit,
         R"(too_long, line "ok")"},
        {"over-long, no LF yet", repeat('a', 25), limit, ""},
        {"over-long, CR at limit", repeat('a', 9) + "\r", limit, ""},
        {"reported once", repeat('a', 35) + "\r\n", limit, "too_long"},
        {"two over-long in a row",
         repeat('a', 12) + "\r\n" + repeat('b', 30) + "\n", limit,
         "too_long, too_long"},
        {"over-long between good lines",
         "one\r\n" + repeat('a', 11) + "\r\ntwo\r\n", limit,
         R"(line "one", too_long, line "two")"},
        {"protocol limit, 998 + CRLF", repeat('a', 998) + "\r\n", max,
         "line \"" + repeat('a', 998) + "\""},
        {"protocol limit, 999 + LF", repeat('a', 999) + "\n", max,
         "line \"" + repeat('a', 999) + "\""},
        {"protocol limit, 999 + CRLF", repeat('a', 999) + "\r\nok\r\n", max,
         R"(too_long, line "ok")"},
        {"protocol limit, 1000 + LF", repeat('a', 1000) + "\nok\n", max,
         R"(too_long, line "ok")"},
        {"1 MiB line, then a good one", mib_line + "\r\nHELLO me\r\n", max,
         R"(too_long, line "HELLO me")"},

        // Payload octets after a line, read with take()
        {"payload after its line", "PAYLOAD 5\r\nabcdeQUIT\r\n", roomy,
         R"(line "PAYLOAD 5", payload "abcde", line "QUIT")"},
        {"payload holds line ends", "PAYLOAD 6\r\na\r\nb\ncNOOP\n", roomy,
         R"(line "PAYLOAD 6", payload "a\r\nb\nc", line "NOOP")"},
        {"empty payload", "PAYLOAD 0\r\nNOOP\r\n", roomy,
         R"(line "PAYLOAD 0", payload "", line "NOOP")"},
        {"payload past the limit is no line",
         "PAYLOAD 30\r\n" + repeat('p', 30) + "QUIT\r\n", roomy,
         "line \"PAYLOAD 30\", payload \"" + repeat('p', 30) +
             "\", line \"QUIT\""},
        {"payload ends in CR", "PAYLOAD 2\r\nx\r\nQUIT\r\n", roomy,
         R"(line "PAYLOAD 2", payload "x\r", line "", line "QUIT")"},
        {"pipelined payloads", "PAYLOAD 1\r\nAPAYLOAD 2\nBCNOOP\r\n", roomy,
         R"(line "PAYLOAD 1", payload "A", line "PAYLOAD 2", )"
         R"(payload "BC", line "NOOP")"},
        {"payload of 1 MiB", "PAYLOAD 1048576\r\n" + mib_line + "QUIT\r\n",
         roomy,
         "line \"PAYLOAD 1048576\", payload \"" + mib_line +
             "\", line \"QUIT\""},
    };
}

} // namespace

TEST_CASE("LineReader: lines, limits and payloads, in every chunking") {
    for (const Case& c : cases()) {
        for (std::size_t chunk : chunk_sizes) {
            INFO(c.what << ", chunks of "
                        << (chunk == whole ? "all" : std::to_string(chunk)));
            CHECK(run(c.input, c.max_line_bytes, chunk) == c.expected);
        }
    }
}

TEST_CASE("LineReader: CRLF split across two reads") {
    LineReader reader(cloudproto::max_line_bytes);
    reader.append("HELLO me\r");
    CHECK(reader.next().kind == LineEvent::Kind::need_more);

    reader.append("\nNOOP");
    LineEvent event = reader.next();
    CHECK(event.kind == LineEvent::Kind::line);
    CHECK(event.text == "HELLO me");
    CHECK(reader.next().kind == LineEvent::Kind::need_more);
    CHECK(reader.buffered() == 4);
}

TEST_CASE("LineReader: an over-long line costs no memory while it lasts") {
    constexpr std::size_t limit = 100;
    LineReader reader(limit);
    for (int i = 0; i < 1000; ++i) {
        reader.append(std::string(1000, 'x'));
        REQUIRE(reader.next().kind == LineEvent::Kind::need_more);
        CHECK(reader.buffered() == 0);
    }

    reader.append("x\r\nNOOP\r\n");
    CHECK(reader.next().kind == LineEvent::Kind::too_long);
    LineEvent event = reader.next();
    CHECK(event.kind == LineEvent::Kind::line);
    CHECK(event.text == "NOOP");
    CHECK(reader.next().kind == LineEvent::Kind::need_more);
}

TEST_CASE("LineReader: payload octets right after a line, same chunk") {
    LineReader reader(cloudproto::max_line_bytes);
    reader.append("SUBMIT 0123456789abcdef 3 2\r\nabcdeNOOP\r\n");

    LineEvent event = reader.next();
    REQUIRE(event.kind == LineEvent::Kind::line);
    CHECK(event.text == "SUBMIT 0123456789abcdef 3 2");

    std::string payload;
    CHECK(reader.take(5, payload) == 5);
    CHECK(payload == "abcde");
    CHECK(reader.buffered() == 6);

    event = reader.next();
    CHECK(event.kind == LineEvent::Kind::line);
    CHECK(event.text == "NOOP");
}

TEST_CASE("LineReader: take() moves no more than is buffered") {
    LineReader reader(cloudproto::max_line_bytes);
    std::string out = "kept:";
    CHECK(reader.take(10, out) == 0);

    reader.append("abc");
    CHECK(reader.take(10, out) == 3);
    CHECK(out == "kept:abc"); // appended, not replaced
    CHECK(reader.buffered() == 0);
}

// After a partial line has been searched, octets taken from its front
// must not make the search skip an LF.
TEST_CASE("LineReader: take() from a line already searched") {
    LineReader reader(cloudproto::max_line_bytes);
    reader.append("abcdef");
    CHECK(reader.next().kind == LineEvent::Kind::need_more);

    std::string out;
    CHECK(reader.take(2, out) == 2);
    reader.append("\n");
    LineEvent event = reader.next();
    CHECK(event.kind == LineEvent::Kind::line);
    CHECK(event.text == "cdef");
}

TEST_CASE("LineReader: prepare() gives the room asked for") {
    LineReader reader(cloudproto::max_line_bytes);
    for (std::size_t n : {0, 1, 100, 65536}) {
        std::span<char> room = reader.prepare(n);
        CHECK(room.size() >= n);
        CHECK_THROWS_AS(reader.commit(room.size() + 1), std::length_error);
    }

    std::span<char> room = reader.prepare(5);
    std::memcpy(room.data(), "ab\ncd", 5);
    reader.commit(5);
    CHECK(reader.buffered() == 5);
    CHECK(reader.next().text == "ab");
    CHECK(reader.buffered() == 2);
}

// Many lines through a small buffer exercise compaction and growth;
// every line must come out whole and in order.
TEST_CASE("LineReader: a long stream of lines through a reused buffer") {
    std::string input;
    std::vector<std::string> sent;
    for (std::size_t i = 0; i < 20000; ++i) {
        sent.push_back(std::to_string(i) + std::string(i % 990, 'y'));
        input += sent.back() + (i % 2 ? "\r\n" : "\n");
    }

    for (std::size_t chunk : {std::size_t{1}, std::size_t{509},
                              std::size_t{4096}, std::size_t{65521}}) {
        INFO("chunks of " << chunk);
        LineReader reader(cloudproto::max_line_bytes);
        std::size_t received = 0;
        bool in_order = true;
        for (std::size_t at = 0; at < input.size(); at += chunk) {
            std::string_view piece = std::string_view(input).substr(at, chunk);
            std::span<char> room = reader.prepare(piece.size());
            std::copy(piece.begin(), piece.end(), room.begin());
            reader.commit(piece.size());
            for (LineEvent e = reader.next(); e.kind == LineEvent::Kind::line;
                 e = reader.next())
                in_order = in_order && received < sent.size() &&
                           e.text == sent[received++];
        }
        CHECK(in_order);
        CHECK(received == sent.size());
        CHECK(reader.buffered() == 0);
    }
}

TEST_CASE("LineReader: an over-long line keeps its first octets, however "
          "it arrives") {
    const std::string line = "  submit job-1 50 8 X=" + std::string(2000, 'a');
    const std::string input = line + "\r\nNOOP\r\n";
    for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{999},
                              std::size_t{1000}, input.size()}) {
        CAPTURE(piece);
        LineReader reader(cloudproto::max_line_bytes);
        std::vector<std::string> events;
        for (std::size_t at = 0; at < input.size(); at += piece) {
            reader.append(std::string_view(input).substr(at, piece));
            for (LineEvent e = reader.next();
                 e.kind != LineEvent::Kind::need_more; e = reader.next()) {
                const bool long_one = e.kind == LineEvent::Kind::too_long;
                events.push_back((long_one ? "too_long " : "line ") +
                                 std::string(e.text));
            }
        }
        REQUIRE(events.size() == 2);
        CHECK(events[0] == "too_long " + line.substr(0, 16));
        CHECK(events[1] == "line NOOP");
    }
    // Under a limit smaller than what a reader keeps: the whole limit.
    LineReader small(4);
    small.append("abcdefgh\n");
    const LineEvent e = small.next();
    CHECK(e.kind == LineEvent::Kind::too_long);
    CHECK(e.text == "abcd");
}
