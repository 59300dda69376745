// The encodings a result mail needs (RFC 2045, 2046, 2047, 5322), kept
// apart from what the mail says so that each can be tested on its own.
#pragma once

#include "cloudproto/job_report.hpp"

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace cloudnode::mime {

// The longest line we generate, CRLF excluded (RFC 5322 "SHOULD"), and
// the longest any line may be (RFC 5322 "MUST").
inline constexpr std::size_t max_generated_line_bytes = 78;
inline constexpr std::size_t max_line_bytes = 998;

// Base64 and quoted-printable lines (RFC 2045 sections 6.7 and 6.8).
inline constexpr std::size_t max_encoded_line_bytes = 76;

// --- Randomness ---------------------------------------------------------

// The one place a mail's randomness comes from: OpenSSL's RAND_bytes,
// unless a test has put a fixed source in its place so that the same
// inputs give the same message byte for byte. Throws std::runtime_error
// when OpenSSL has no randomness to give: a mail without unpredictable
// boundaries is not worth sending.
using RandomSource = void (*)(unsigned char* out, std::size_t size);
void random_bytes(unsigned char* out, std::size_t size);

// For tests only. Returns the source it replaces; nullptr restores
// RAND_bytes.
RandomSource set_random_source(RandomSource source);

// `size` random bytes as lower-case hex.
std::string random_hex(std::size_t size);

// A multipart boundary (RFC 2046 section 5.1.1) that occurs in none of
// `parts`. It contains "=_", which neither base64 nor our
// quoted-printable can produce, and is checked anyway.
std::string choose_boundary(std::span<const std::string_view> parts);

// --- Text ---------------------------------------------------------------

bool is_valid_utf8(std::string_view bytes);

// `text` made safe to show a person and to put in a header: valid UTF-8
// is kept, control characters (CR, LF and NUL among them), invalid
// bytes and characters that reorder or break lines are written as
// escapes (\n, \x00, \u202e). Backslash itself is kept.
std::string visible(std::string_view text);

// --- Bodies -------------------------------------------------------------

// Base64 in lines of 76 characters, each ended by CRLF.
std::string encode_base64(std::string_view bytes);

// Quoted-printable built from two kinds of input: text we generate,
// where '\n' is a line break, and bytes that must come back exactly,
// where CR and LF are encoded like any other octet. Lines stay within
// max_encoded_line_bytes; the result ends with CRLF unless empty.
class QuotedPrintableWriter {
public:
    void text(std::string_view utf8);
    void exact(std::string_view bytes);
    std::string finish();

private:
    void put(std::string_view token);
    void put_octet(unsigned char octet);
    void soft_break();
    void end_line();

    std::string out_;
    std::size_t line_bytes_ = 0;
};

// --- Headers ------------------------------------------------------------

// "Name: value" CRLF for an unstructured field (Subject, X- fields).
// `value` goes through visible(); it is folded at spaces, or written as
// RFC 2047 encoded-words (=?UTF-8?B?...?=) when it is not ASCII or
// cannot be folded within the line limit.
std::string unstructured_field(std::string_view name, std::string_view value);

// "Name: value" CRLF for an address field (From, To). Addresses reach
// us validated; as a second line of defence every octet outside
// printable ASCII is written as \xNN and an overlong value is cut, so
// the field stays one line whatever the input.
std::string address_field(std::string_view name, std::string_view value);

// RFC 5322 section 3.3 date-time in UTC: "Thu, 03 Dec 2026 17:42:01 +0000".
std::string format_date(cloudproto::Clock::time_point when);

} // namespace cloudnode::mime
