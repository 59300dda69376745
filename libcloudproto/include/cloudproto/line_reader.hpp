// Splits a byte stream into protocol lines, under a length limit, and
// hands out the raw octets of a length-prefixed payload that follows a
// line (proto-spec section "Framing").
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace cloudproto {

struct LineEvent {
    enum class Kind {
        need_more, // no complete line buffered yet
        line,      // `text` holds one line, without its CRLF or LF
        too_long,  // a line passed the limit; it was discarded whole
    };
    Kind kind = Kind::need_more;
    std::string_view text; // valid until the next call on the reader
};

class LineReader {
public:
    // `max_line_bytes` counts the line ending too.
    explicit LineReader(std::size_t max_line_bytes);

    // Room for at least `n` more octets, to read into directly; then
    // commit() what was actually read.
    std::span<char> prepare(std::size_t n);
    void commit(std::size_t n);
    void append(std::string_view bytes);

    // The next line, if a whole one is buffered. A line longer than
    // the limit is skipped up to its LF and reported once as too_long.
    LineEvent next();

    // Moves up to `n` buffered octets that follow the last line into
    // `out`, for a payload; returns how many it moved.
    std::size_t take(std::size_t n, std::string& out);

    std::size_t buffered() const;

private:
    // implementation's choice
};

} // namespace cloudproto
