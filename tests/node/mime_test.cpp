#include "node/mime.hpp"

#include "support/mime_reader.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

using namespace std::string_literals;
namespace mime = cloudnode::mime;
using namespace test_support;

// --- Encoders -----------------------------------------------------------

TEST_CASE("base64 of the RFC 4648 test vectors") {
    struct Case {
        const char* in;
        const char* out;
    };
    const Case cases[] = {
        {"", ""},
        {"f", "Zg==\r\n"},
        {"fo", "Zm8=\r\n"},
        {"foo", "Zm9v\r\n"},
        {"foob", "Zm9vYg==\r\n"},
        {"fooba", "Zm9vYmE=\r\n"},
        {"foobar", "Zm9vYmFy\r\n"},
    };
    for (const Case& c : cases)
        CHECK(cloudnode::mime::encode_base64(c.in) == c.out);

    std::string encoded = cloudnode::mime::encode_base64(std::string(57, 'a'));
    CHECK(encoded.size() == 76 + 2);
    encoded = cloudnode::mime::encode_base64(std::string(58, 'a'));
    CHECK(encoded.find("\r\n") == 76);
}

TEST_CASE("quoted-printable keeps exact bytes and generated lines apart") {
    struct Case {
        const char* name;
        std::string text;
        std::string exact;
    };
    const Case cases[] = {
        {"empty", "", ""},
        {"text lines", "one\ntwo\n", ""},
        {"trailing space in text", "space \ntab\t\n", ""},
        {"every byte value", "", every_byte_value(4096)},
        {"long line", std::string(300, '='), std::string(300, 'q')},
        {"ends in white space", "", "x "},
    };
    for (const Case& c : cases) {
        INFO("case: " << std::string(c.name));
        cloudnode::mime::QuotedPrintableWriter writer;
        writer.text(c.text);
        writer.exact(c.exact);
        std::string encoded = writer.finish();
        if (!encoded.empty())
            check_lines(encoded, cloudnode::mime::max_encoded_line_bytes);

        // Generated '\n' becomes the canonical CRLF
        std::string expected;
        for (char ch : c.text)
            expected += ch == '\n' ? "\r\n" : std::string(1, ch);
        CHECK(decode_quoted_printable(encoded) == expected + c.exact);

        // No line may end in white space that a transport could strip
        for (std::size_t at = encoded.find("\r\n"); at != std::string::npos;
             at = encoded.find("\r\n", at + 2))
            CHECK((at == 0 ||
                   (encoded[at - 1] != ' ' && encoded[at - 1] != '\t')));
    }
}

TEST_CASE("visible text escapes what could break a line or hide meaning") {
    struct Case {
        std::string in;
        std::string out;
    };
    const Case cases[] = {
        {"plain", "plain"},
        {"a\r\nb", "a\\r\\nb"},
        {"tab\there", "tab\\there"},
        {"nul\0x"s, "nul\\x00x"},
        {"del\x7f", "del\\x7f"},
        {"bad \xff byte", "bad \\xff byte"},
        {"cut \xe6\xbc", "cut \\xe6\\xbc"},
        {"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
        {"overlong \xc0\xaf", "overlong \\xc0\\xaf"},
        {"caf\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80",
         "caf\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80"},
        {"rtl \xe2\x80\xae", "rtl \\u202e"},
        {"c1 \xc2\x85", "c1 \\u0085"},
        {"back\\slash", "back\\slash"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.in);
        CHECK(cloudnode::mime::visible(c.in) == c.out);
    }
}
