#include "cloudproto/smtp_client.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace std::literals;
namespace smtp = cloudproto::smtp;

TEST_CASE("AUTH PLAIN sends NUL user NUL password in base64") {
    // RFC 4954 section 4's example
    CHECK(smtp::auth_plain_response("test", "1234") == "AHRlc3QAMTIzNA==");
    CHECK(smtp::auth_plain_response("", "") == "AAA=");
    CHECK(smtp::auth_plain_response("node-e2e", "e2e-Mail-Pass-8d2f") ==
          "AG5vZGUtZTJlAGUyZS1NYWlsLVBhc3MtOGQyZg==");
}

TEST_CASE("AUTH LOGIN sends each answer in base64 on one line") {
    struct Row {
        std::string text;
        std::string sent;
    } rows[] = {
        // RFC 4648 section 10
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
        {"p\xc3\xa4sswo\xcc\x88rd", "cMOkc3N3b8yIcmQ="},
        {"nul\0in"s, "bnVsAGlu"},
    };
    for (const auto& row : rows) {
        CAPTURE(row.text);
        CHECK(smtp::auth_login_response(row.text) == row.sent);
    }

    // No line break however long: it must stay one command line
    auto long_answer = smtp::auth_login_response(std::string(300, 'p'));
    CHECK(long_answer.size() == 400);
    CHECK(long_answer.find_first_of("\r\n") == std::string::npos);
}

TEST_CASE("EHLO's address literal for a client without a domain") {
    struct Row {
        std::string address;
        std::string literal;
    } rows[] = {
        {"127.0.0.1", "[127.0.0.1]"},
        {"192.0.2.17", "[192.0.2.17]"},
        {"::1", "[IPv6:::1]"},
        {"2001:db8::25", "[IPv6:2001:db8::25]"},
        // A dual-stack socket's view of an IPv4 peer
        {"::ffff:192.0.2.17", "[192.0.2.17]"},
    };
    for (const auto& row : rows) {
        CAPTURE(row.address);
        CHECK(smtp::address_literal(asio::ip::make_address(row.address)) ==
              row.literal);
    }
}
