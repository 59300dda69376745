#include "cloudproto/line_reader.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace cloudproto {

namespace {

// The least a buffer grows by, so that a reader fed a few octets at a
// time does not reallocate on every call.
constexpr std::size_t min_growth_bytes = 4096;

} // namespace

LineReader::LineReader(std::size_t max_line_bytes)
    : max_line_bytes_(max_line_bytes) {}

std::span<char> LineReader::prepare(std::size_t n) {
    reserve_tail(n);
    return {buf_.data() + end_, buf_.size() - end_};
}

void LineReader::commit(std::size_t n) {
    if (n > buf_.size() - end_)
        throw std::length_error("LineReader::commit: more than prepared");
    end_ += n;
}

void LineReader::append(std::string_view bytes) {
    auto room = prepare(bytes.size());
    std::copy(bytes.begin(), bytes.end(), room.begin());
    commit(bytes.size());
}

// Moving the unread octets to the front costs their number, so it is
// done only when at least as many consumed octets lie before them:
// each consumed octet then pays for at most one moved octet. Otherwise
// the buffer also doubles, which costs O(1) per octet over its
// lifetime, and its size stays within a small multiple of the most
// ever unread plus the room asked for.
void LineReader::reserve_tail(std::size_t n) {
    if (buf_.size() - end_ >= n)
        return;

    std::size_t unread = end_ - begin_;
    bool compact_is_cheap = begin_ >= unread;
    bool compact_is_enough = buf_.size() - unread >= n;

    if (begin_ > 0) {
        std::memmove(buf_.data(), buf_.data() + begin_, unread);
        begin_ = 0;
        end_ = unread;
    }
    if (compact_is_cheap && compact_is_enough)
        return;

    buf_.resize(std::max({unread + n, 2 * buf_.size(), min_growth_bytes}));
}

LineEvent LineReader::next() {
    if (discarding_)
        return skip_long_line();

    // An LF is looked for only within the limit: one further away ends
    // a line that is too long whatever it holds.
    std::size_t unread = end_ - begin_;
    std::size_t window = std::min(unread, max_line_bytes_);
    const char* line = buf_.data() + begin_;
    if (scanned_ < window) {
        const void* lf = std::memchr(line + scanned_, '\n', window - scanned_);
        if (lf != nullptr) {
            auto length =
                static_cast<std::size_t>(static_cast<const char*>(lf) - line);
            std::string_view text(line, length);
            if (!text.empty() && text.back() == '\r')
                text.remove_suffix(1);

            begin_ += length + 1;
            scanned_ = 0;
            if (begin_ == end_)
                begin_ = end_ = 0; // the view stays valid: no octet moves
            return {LineEvent::Kind::line, text};
        }
        scanned_ = window;
    }
    if (unread < max_line_bytes_)
        return {};

    // The limit is reached without an LF: drop the line as it comes,
    // keeping its first octets.
    head_size_ = std::min(head_.size(), max_line_bytes_);
    std::memcpy(head_.data(), line, head_size_);
    begin_ += scanned_;
    scanned_ = 0;
    discarding_ = true;
    return skip_long_line();
}

// Drops octets up to the LF that ends an over-long line. The line is
// reported when its LF arrives, not when it passes the limit, so that
// the one reply it earns answers a whole line, in order with the
// replies to the lines around it.
LineEvent LineReader::skip_long_line() {
    const char* from = buf_.data() + begin_;
    const void* lf = std::memchr(from, '\n', end_ - begin_);
    if (lf == nullptr) {
        begin_ = end_ = 0;
        return {};
    }

    auto rest = static_cast<std::size_t>(static_cast<const char*>(lf) - from);
    begin_ += rest + 1;
    if (begin_ == end_)
        begin_ = end_ = 0;
    discarding_ = false;
    return {LineEvent::Kind::too_long, {head_.data(), head_size_}};
}

// A payload only ever follows a line event, so no over-long line is
// being dropped when this is called.
std::size_t LineReader::take(std::size_t n, std::string& out) {
    std::size_t moved = std::min(n, end_ - begin_);
    out.append(buf_.data() + begin_, moved);

    begin_ += moved;
    scanned_ = scanned_ > moved ? scanned_ - moved : 0;
    if (begin_ == end_)
        begin_ = end_ = 0;
    return moved;
}

std::size_t LineReader::buffered() const {
    return end_ - begin_;
}

} // namespace cloudproto
