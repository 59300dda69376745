// Helpers the parser tests share: how octets are written in expected
// strings and vector files, and the sizes inputs are cut into.
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <string_view>

namespace test_support {

// Whole, one octet at a time, and odd sizes that split CRLF, codes,
// lines and payloads at every kind of place.
inline constexpr std::size_t whole = std::numeric_limits<std::size_t>::max();
inline constexpr std::size_t chunk_sizes[] = {whole, 1, 2, 3, 5, 7, 13, 4093};

// Octets as the expected strings and proto-spec/vectors write them:
// \r \n \t \0 \\ \" and \xNN for anything else not printable.
inline std::string escape(std::string_view octets) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : octets) {
        if (c == '\r')
            out += "\\r";
        else if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else if (c == '\0')
            out += "\\0";
        else if (c == '\\' || c == '"')
            out += {'\\', static_cast<char>(c)};
        else if (c >= 0x20 && c < 0x7f)
            out += static_cast<char>(c);
        else
            out += {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
    }
    return out;
}

} // namespace test_support
