// Fuzzes smtp::data_block (smtp_wire.hpp), which writes a result mail
// as DATA carries it. Whatever a job printed into the mail, the block
// must end only at its own ".\r\n" (no early end, so no command smuggled
// after it), hold no bare CR or LF, and give the message back, line ends
// aside, once the server undoes the dot-stuffing.
#include "cloudproto/smtp_wire.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_smtp_data_block: %s\n", what);
        std::abort();
    }
}

// The message with every line end (CRLF, LF, or a CR alone) one LF, and
// a last line without one ended.
std::string normalised(std::string_view message) {
    std::string out;
    for (std::size_t i = 0; i < message.size(); ++i) {
        if (message[i] == '\r') {
            out += '\n';
            if (i + 1 < message.size() && message[i + 1] == '\n')
                ++i;
        } else {
            out += message[i];
        }
    }
    if (!out.empty() && out.back() != '\n')
        out += '\n';
    return out;
}

// What a server reads from the block (RFC 5321 4.5.2), lines ended by
// LF; checks the framing on the way.
std::string unstuffed(std::string_view block) {
    std::string out;
    for (;;) {
        auto crlf = block.find("\r\n");
        check(crlf != std::string_view::npos, "block not ended by CRLF");
        std::string_view line = block.substr(0, crlf);
        block.remove_prefix(crlf + 2);
        check(line.find_first_of("\r\n") == std::string_view::npos,
              "a bare CR or LF in the block");
        if (line == ".") {
            check(block.empty(), "the block ends early");
            return out;
        }
        if (!line.empty() && line[0] == '.') {
            check(line.size() > 1 && line[1] == '.', "a line not stuffed");
            line.remove_prefix(1);
        }
        out.append(line);
        out += '\n';
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
    std::string_view message(reinterpret_cast<const char*>(data), size);
    std::string block = cloudproto::smtp::data_block(message);
    check(unstuffed(block) == normalised(message),
          "the message changed on its way through DATA");
    return 0;
}
