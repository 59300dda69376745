#include "cloudproto/smtp_wire.hpp"

#include "cloudproto/text.hpp"

namespace cloudproto::smtp {

namespace {

std::string upper(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    return s;
}

} // namespace

Extensions parse_ehlo(const Reply& ehlo) {
    Extensions e;
    for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
        auto words = split_words(ehlo.lines[i]);
        if (words.empty())
            continue;
        auto keyword = upper(words[0]);
        // Some servers still write "AUTH=PLAIN LOGIN".
        if (keyword.starts_with("AUTH=")) {
            words[0] = keyword.substr(5);
            keyword = "AUTH";
            words.insert(words.begin(), keyword);
        }
        e.keywords.insert(keyword);
        if (keyword == "AUTH") {
            for (std::size_t w = 1; w < words.size(); ++w)
                e.auth.insert(upper(words[w]));
        }
    }
    return e;
}

std::string data_block(std::string_view message) {
    std::string out;
    out.reserve(message.size() + message.size() / 64 + 8);
    bool line_start = true;
    for (std::size_t i = 0; i < message.size(); ++i) {
        char c = message[i];
        if (line_start && c == '.')
            out += '.';
        line_start = false;
        if (c == '\n') {
            if (out.empty() || out.back() != '\r')
                out += '\r';
            line_start = true;
        } else if (c == '\r' &&
                   (i + 1 == message.size() || message[i + 1] != '\n')) {
            // A CR alone would end nothing on the wire: make it a line end.
            out += "\r\n";
            line_start = true;
            continue;
        }
        out += c;
    }
    if (!out.empty() && !line_start)
        out += "\r\n";
    out += ".\r\n";
    return out;
}

} // namespace cloudproto::smtp
