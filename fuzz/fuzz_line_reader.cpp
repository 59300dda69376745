// Fuzzes LineReader (line_reader.hpp) against a plain model of the
// framing rules: lines end at LF (one CR before it dropped), a line
// longer than the limit is dropped whole and reported once at its LF,
// and take() hands out the octets after a line as a payload.
//
// Input: one octet picks the limit, one seeds the chunking; the rest is
// the stream, given to the reader in chunks of varying size, through
// append() and through prepare()/commit(), as a socket would.
#include "cloudproto/line_reader.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using cloudproto::LineEvent;
using cloudproto::LineReader;

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_line_reader: %s\n", what);
        std::abort();
    }
}

// The framing rules, written as simply as they can be.
class Model {
public:
    explicit Model(std::size_t max_line_bytes) : max_(max_line_bytes) {}

    void append(std::string_view bytes) { unread_ += bytes; }

    LineEvent::Kind next(std::string& text) {
        if (discarding_) {
            auto lf = unread_.find('\n');
            if (lf == std::string::npos) {
                unread_.clear();
                return LineEvent::Kind::need_more;
            }
            unread_.erase(0, lf + 1);
            discarding_ = false;
            return LineEvent::Kind::too_long;
        }
        auto lf = unread_.find('\n');
        if (lf != std::string::npos && lf + 1 <= max_) {
            text = unread_.substr(0, lf);
            if (!text.empty() && text.back() == '\r')
                text.pop_back();
            unread_.erase(0, lf + 1);
            return LineEvent::Kind::line;
        }
        if (unread_.size() < max_)
            return LineEvent::Kind::need_more;
        discarding_ = true;
        return next(text);
    }

    std::string take(std::size_t n) {
        std::string out = unread_.substr(0, n);
        unread_.erase(0, out.size());
        return out;
    }

    std::size_t buffered() const { return unread_.size(); }

private:
    std::size_t max_;
    std::string unread_;
    bool discarding_ = false;
};

// Chunk sizes and choices: a small generator seeded from the input, so
// that a crash replays from its file alone.
class Choices {
public:
    explicit Choices(std::uint32_t seed) : state_(seed * 2654435761u + 1) {}

    std::size_t below(std::size_t n) {
        state_ ^= state_ << 13;
        state_ ^= state_ >> 17;
        state_ ^= state_ << 5;
        return n == 0 ? 0 : state_ % n;
    }

private:
    std::uint32_t state_;
};

constexpr std::size_t limits[] = {1, 2, 3, 5, 8, 13, 64, 1000};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
    if (size < 2)
        return 0;
    const std::size_t max = limits[data[0] % std::size(limits)];
    Choices choose(data[1]);
    std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

    LineReader reader(max);
    Model model(max);
    while (!stream.empty()) {
        // One read from the socket
        std::size_t n = std::min(stream.size(), 1 + choose.below(2 * max + 2));
        std::string_view chunk = stream.substr(0, n);
        stream.remove_prefix(n);
        if (choose.below(2) == 0) {
            reader.append(chunk);
        } else {
            auto room = reader.prepare(n + choose.below(64));
            check(room.size() >= n, "prepare() gave too little room");
            std::copy(chunk.begin(), chunk.end(), room.begin());
            reader.commit(n);
        }
        model.append(chunk);

        // Every event it makes, as the model says
        for (;;) {
            std::string text;
            auto expected = model.next(text);
            LineEvent event = reader.next();
            check(event.kind == expected, "event kind differs");
            check(event.kind != LineEvent::Kind::line || event.text == text,
                  "line text differs");
            check(reader.buffered() == model.buffered(), "buffered differs");
            if (event.kind == LineEvent::Kind::need_more)
                break;

            // Sometimes a payload follows the line
            if (event.kind == LineEvent::Kind::line && choose.below(4) == 0) {
                std::size_t want = choose.below(2 * max + 2);
                std::string payload;
                std::size_t moved = reader.take(want, payload);
                check(payload == model.take(want), "payload differs");
                check(moved == payload.size(), "take() miscounted");
            }
        }
    }
    return 0;
}
