#include "node/mime.hpp"

#include <openssl/rand.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <stdexcept>

namespace cloudnode::mime {

namespace {

// Enough to make a guessed or colliding boundary or Message-ID hopeless.
constexpr std::size_t boundary_random_bytes = 16;

// A fixed test source that keeps repeating itself would otherwise make
// choose_boundary loop for ever; real randomness never needs a second
// try.
constexpr int max_boundary_attempts = 16;

constexpr std::string_view boundary_prefix = "=_cloudproto_";
constexpr std::string_view hex_digits = "0123456789abcdef";
constexpr std::string_view upper_hex_digits = "0123456789ABCDEF";

std::atomic<RandomSource> random_source{nullptr};

void openssl_random_bytes(unsigned char* out, std::size_t size) {
    while (size > 0) {
        int chunk = size > INT_MAX ? INT_MAX : static_cast<int>(size);
        if (RAND_bytes(out, chunk) != 1)
            throw std::runtime_error("RAND_bytes has no randomness to give");
        out += chunk;
        size -= static_cast<std::size_t>(chunk);
    }
}

// The length of the well-formed UTF-8 sequence at text[i] and its code
// point, or 0 for an invalid one (overlong forms, surrogates and values
// past U+10FFFF included, as RFC 3629 asks).
std::size_t decode_utf8(std::string_view text, std::size_t i, char32_t& cp) {
    auto byte = [&](std::size_t k) {
        return static_cast<unsigned char>(text[k]);
    };
    unsigned char lead = byte(i);
    std::size_t length = 0;
    char32_t min = 0;
    if (lead < 0x80) {
        cp = lead;
        return 1;
    } else if ((lead & 0xE0) == 0xC0) {
        length = 2, cp = lead & 0x1F, min = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
        length = 3, cp = lead & 0x0F, min = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
        length = 4, cp = lead & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (text.size() - i < length)
        return 0;
    for (std::size_t k = 1; k < length; ++k) {
        if ((byte(i + k) & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (byte(i + k) & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return length;
}

// Characters that would let a job's text reorder or split what a person
// reads: C1 controls, bidirectional overrides, line separators, BOM.
bool hides_meaning(char32_t cp) {
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x200E || cp == 0x200F ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF;
}

void append_hex_escape(std::string& out, unsigned char octet) {
    out += "\\x";
    out += hex_digits[octet >> 4];
    out += hex_digits[octet & 0x0F];
}

bool is_ascii(std::string_view text) {
    for (char c : text)
        if (static_cast<unsigned char>(c) >= 0x80)
            return false;
    return true;
}

bool line_fits(std::string_view field, std::size_t limit) {
    std::size_t start = 0;
    while (start < field.size()) {
        std::size_t end = field.find("\r\n", start);
        if (end == std::string_view::npos)
            end = field.size();
        if (end - start > limit)
            return false;
        start = end + 2;
    }
    return true;
}

// Folds "Name: value" before spaces so that lines keep to the generated
// limit where a space allows it. A fold never leaves a line of only
// white space, which RFC 5322 section 3.2.2 forbids.
std::string fold_at_spaces(std::string_view name, std::string_view value) {
    std::string line = fmt::format("{}: {}", name, value);
    std::size_t first_fold = name.size() + 2;
    auto can_fold = [&](std::size_t i) {
        return i > first_fold && line[i] == ' ' && line[i - 1] != ' ' &&
               line.find_first_not_of(' ', i) != std::string::npos;
    };

    std::string out;
    std::size_t start = 0;
    while (line.size() - start > max_generated_line_bytes) {
        std::size_t cut = std::string::npos;
        for (std::size_t i = start + max_generated_line_bytes; i > start; --i)
            if (can_fold(i)) {
                cut = i;
                break;
            }
        for (std::size_t i = start + max_generated_line_bytes + 1;
             cut == std::string::npos && i < line.size(); ++i)
            if (can_fold(i))
                cut = i;
        if (cut == std::string::npos)
            break;
        out.append(line, start, cut - start);
        out += "\r\n";
        start = cut;
    }
    out.append(line, start);
    out += "\r\n";
    return out;
}

// RFC 2047 B encoding, one encoded-word per line. Each word holds whole
// UTF-8 characters (section 5, rule 3) and is at most 75 characters.
std::string encode_words(std::string_view name, std::string_view utf8) {
    constexpr std::size_t max_word_bytes = 75;
    constexpr std::string_view word_open = "=?UTF-8?B?";
    constexpr std::string_view word_close = "?=";
    constexpr std::size_t overhead = word_open.size() + word_close.size();

    std::string out = fmt::format("{}:", name);
    std::size_t line_bytes = out.size();
    std::size_t i = 0;
    while (i < utf8.size()) {
        // Room on this line, or else on a fresh continuation line
        std::size_t used = line_bytes + 1;
        std::size_t room = used < max_generated_line_bytes
                               ? max_generated_line_bytes - used
                               : 0;
        room = std::min(room, max_word_bytes);
        std::size_t max_chunk = (room - std::min(room, overhead)) / 4 * 3;
        if (max_chunk < 4) {
            out += "\r\n";
            line_bytes = 0;
            continue;
        }

        std::size_t end = i;
        while (end < utf8.size()) {
            char32_t cp = 0;
            std::size_t length = decode_utf8(utf8, end, cp);
            if (length == 0)
                length = 1; // cannot happen after visible(); stay finite
            if (end + length - i > max_chunk)
                break;
            end += length;
        }

        std::string base64 = encode_base64(utf8.substr(i, end - i));
        base64.resize(base64.size() - 2); // one line: drop its CRLF
        std::string word = fmt::format("{}{}{}", word_open, base64, word_close);
        // The space separates the word from "Name:", or folds the line
        out += ' ';
        out += word;
        line_bytes += 1 + word.size();
        i = end;
        if (i < utf8.size()) {
            out += "\r\n";
            line_bytes = 0;
        }
    }
    out += "\r\n";
    return out;
}

} // namespace

// --- Randomness ---------------------------------------------------------

void random_bytes(unsigned char* out, std::size_t size) {
    RandomSource source = random_source.load();
    if (source != nullptr)
        source(out, size);
    else
        openssl_random_bytes(out, size);
}

RandomSource set_random_source(RandomSource source) {
    return random_source.exchange(source);
}

std::string random_hex(std::size_t size) {
    std::string raw(size, '\0');
    random_bytes(reinterpret_cast<unsigned char*>(raw.data()), size);
    std::string out;
    for (char c : raw) {
        auto octet = static_cast<unsigned char>(c);
        out += hex_digits[octet >> 4];
        out += hex_digits[octet & 0x0F];
    }
    return out;
}

std::string choose_boundary(std::span<const std::string_view> parts) {
    for (int attempt = 0; attempt < max_boundary_attempts; ++attempt) {
        std::string boundary = fmt::format("{}{}", boundary_prefix,
                                           random_hex(boundary_random_bytes));
        bool clashes = false;
        for (std::string_view part : parts)
            clashes = clashes || part.find(boundary) != std::string::npos;
        if (!clashes)
            return boundary;
    }
    throw std::runtime_error("no multipart boundary avoids the content");
}

// --- Text ---------------------------------------------------------------

bool is_valid_utf8(std::string_view bytes) {
    for (std::size_t i = 0; i < bytes.size();) {
        char32_t cp = 0;
        std::size_t length = decode_utf8(bytes, i, cp);
        if (length == 0)
            return false;
        i += length;
    }
    return true;
}

std::string visible(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        char32_t cp = 0;
        std::size_t length = decode_utf8(text, i, cp);
        if (length == 0) {
            append_hex_escape(out, static_cast<unsigned char>(text[i]));
            ++i;
            continue;
        }

        if (cp == '\n')
            out += "\\n";
        else if (cp == '\r')
            out += "\\r";
        else if (cp == '\t')
            out += "\\t";
        else if (cp < 0x20 || cp == 0x7F)
            append_hex_escape(out, static_cast<unsigned char>(cp));
        else if (hides_meaning(cp))
            out += fmt::format("\\u{:04x}", static_cast<std::uint32_t>(cp));
        else
            out.append(text, i, length);
        i += length;
    }
    return out;
}

// --- Bodies -------------------------------------------------------------

std::string encode_base64(std::string_view bytes) {
    constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    constexpr std::size_t groups_per_line = max_encoded_line_bytes / 4;

    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4 * 78 / 76 + 2);
    std::size_t groups = 0;
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        std::size_t left = bytes.size() - i;
        auto at = [&](std::size_t k) -> std::uint32_t {
            return k < left ? static_cast<unsigned char>(bytes[i + k]) : 0;
        };
        std::uint32_t triple = at(0) << 16 | at(1) << 8 | at(2);
        out += alphabet[triple >> 18 & 0x3F];
        out += alphabet[triple >> 12 & 0x3F];
        out += left > 1 ? alphabet[triple >> 6 & 0x3F] : '=';
        out += left > 2 ? alphabet[triple & 0x3F] : '=';
        if (++groups == groups_per_line) {
            out += "\r\n";
            groups = 0;
        }
    }
    if (groups > 0)
        out += "\r\n";
    return out;
}

// A line of content that starts with "." is written as it is: dot-
// stuffing (RFC 5321 section 4.5.2) is the SMTP client's job when it
// sends DATA, and the outbox keeps the message as a reader sees it.
// "From " at a line start needs nothing either: only mbox files care.

void QuotedPrintableWriter::text(std::string_view utf8) {
    for (char c : utf8) {
        if (c == '\n')
            end_line();
        else
            put_octet(static_cast<unsigned char>(c));
    }
}

void QuotedPrintableWriter::exact(std::string_view bytes) {
    // CR and LF are octets like others here, so that a decoder gives
    // back the job's own line ends rather than canonical CRLF. A soft
    // break after each LF keeps the raw message readable line by line.
    for (char c : bytes) {
        put_octet(static_cast<unsigned char>(c));
        if (c == '\n')
            soft_break();
    }
}

std::string QuotedPrintableWriter::finish() {
    if (line_bytes_ > 0)
        soft_break();
    return std::move(out_);
}

void QuotedPrintableWriter::put(std::string_view token) {
    // Keep one column for the "=" of a soft break
    if (line_bytes_ + token.size() > max_encoded_line_bytes - 1)
        soft_break();
    out_ += token;
    line_bytes_ += token.size();
}

void QuotedPrintableWriter::put_octet(unsigned char octet) {
    bool literal = (octet >= 33 && octet <= 126 && octet != '=') ||
                   octet == ' ' || octet == '\t';
    if (literal) {
        char c = static_cast<char>(octet);
        put(std::string_view(&c, 1));
        return;
    }
    char token[3] = {'=', upper_hex_digits[octet >> 4],
                     upper_hex_digits[octet & 0x0F]};
    put(std::string_view(token, 3));
}

void QuotedPrintableWriter::soft_break() {
    // White space before the "=" is safe: it is no longer at a line end
    out_ += "=\r\n";
    line_bytes_ = 0;
}

void QuotedPrintableWriter::end_line() {
    // Transports may strip white space at a line end (RFC 2045 6.7 (3))
    if (line_bytes_ > 0 && (out_.back() == ' ' || out_.back() == '\t')) {
        char octet = out_.back();
        out_.pop_back();
        --line_bytes_;
        put(octet == ' ' ? "=20" : "=09");
    }
    out_ += "\r\n";
    line_bytes_ = 0;
}

// --- Headers ------------------------------------------------------------

std::string unstructured_field(std::string_view name, std::string_view value) {
    std::string text = visible(value);
    if (is_ascii(text)) {
        std::string field = fold_at_spaces(name, text);
        if (line_fits(field, max_line_bytes))
            return field;
    }
    return encode_words(name, text);
}

std::string address_field(std::string_view name, std::string_view value) {
    std::string out = fmt::format("{}: ", name);
    for (char c : value) {
        auto octet = static_cast<unsigned char>(c);
        std::size_t needed = octet >= 0x20 && octet < 0x7F ? 1 : 4;
        if (out.size() + needed > max_line_bytes)
            break;
        if (needed == 1)
            out += c;
        else
            append_hex_escape(out, octet);
    }
    out += "\r\n";
    return out;
}

std::string format_date(cloudproto::Clock::time_point when) {
    using namespace std::chrono;
    constexpr std::string_view day_names[] = {"Sun", "Mon", "Tue", "Wed",
                                              "Thu", "Fri", "Sat"};
    constexpr std::string_view month_names[] = {"Jan", "Feb", "Mar", "Apr",
                                                "May", "Jun", "Jul", "Aug",
                                                "Sep", "Oct", "Nov", "Dec"};

    auto second = floor<seconds>(when);
    auto day = floor<days>(second);
    year_month_day date{day};
    hh_mm_ss time{second - day};
    return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
                       day_names[weekday{day}.c_encoding()],
                       static_cast<unsigned>(date.day()),
                       month_names[static_cast<unsigned>(date.month()) - 1],
                       static_cast<int>(date.year()), time.hours().count(),
                       time.minutes().count(), time.seconds().count());
}

} // namespace cloudnode::mime
