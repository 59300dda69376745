// Splits a byte stream into protocol lines, under a length limit, and
// hands out the raw octets of a length-prefixed payload that follows a
// line (proto-spec section "Framing").
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace cloudproto {

struct LineEvent {
    enum class Kind {
        need_more, // no complete line buffered yet
        line,      // `text` holds one line, without its CRLF or LF
        too_long,  // a line passed the limit; it was discarded whole, but
                   // `text` holds its first octets (line_head_bytes,
                   // fewer only under a smaller limit)
    };
    Kind kind = Kind::need_more;
    std::string_view text; // valid until the next call on the reader
};

// What a reader keeps of a line it discards: enough to tell its verb.
constexpr std::size_t line_head_bytes = 16;

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
    // Makes room for `n` octets after end_, moving the unread octets to
    // the front when that frees enough, growing the buffer otherwise.
    void reserve_tail(std::size_t n);
    LineEvent skip_long_line();

    std::size_t max_line_bytes_;

    // Octets [begin_, end_) of buf_ are unread; [end_, size) is room.
    std::string buf_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;

    // Unread octets already searched for an LF, so that a line arriving
    // in many pieces is scanned once.
    std::size_t scanned_ = 0;

    // Inside an over-long line: octets are dropped until its LF.
    bool discarding_ = false;
    // The first octets of the line being dropped.
    std::array<char, line_head_bytes> head_{};
    std::size_t head_size_ = 0;
};

} // namespace cloudproto
