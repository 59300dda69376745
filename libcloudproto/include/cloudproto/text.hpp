// Small text helpers both ends of a session use on protocol lines.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cloudproto {

// The words of a line, split at runs of spaces (proto-spec "Framing").
inline std::vector<std::string> split_words(std::string_view line) {
    std::vector<std::string> words;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ')
            ++i;
        std::size_t start = i;
        while (i < line.size() && line[i] != ' ')
            ++i;
        if (i > start)
            words.emplace_back(line.substr(start, i - start));
    }
    return words;
}

// A whole decimal number, nothing before or after it; nullopt otherwise
// (also on overflow).
template <typename Int>
std::optional<Int> parse_decimal(std::string_view text) {
    Int value{};
    auto [end, ec] =
        std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

// A number as the spec's ABNF writes counts: decimal, no sign, no
// leading zero ("0" itself is fine), at most `max_digits` digits.
inline std::optional<std::uint64_t> parse_count(std::string_view text,
                                                std::size_t max_digits) {
    if (text.size() > max_digits || (text.size() > 1 && text[0] == '0'))
        return std::nullopt;
    return parse_decimal<std::uint64_t>(text);
}

} // namespace cloudproto
