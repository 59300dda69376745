// Fuzzes what a node reads from a peer's lines (federation.hpp, text.hpp):
// a CAPACITY reply's "RUNTIME <name> <free-slots> <queued-jobs>" lines,
// a RELAY's TRACE value, the words of a command line and the counts in
// it. What parses must format back to the same octets.
#include "cloudproto/federation.hpp"
#include "cloudproto/text.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_federation_lines: %s\n", what);
        std::abort();
    }
}

void check_words(std::string_view line) {
    auto words = cloudproto::split_words(line);
    std::size_t octets = 0;
    for (const auto& word : words) {
        check(!word.empty(), "an empty word");
        check(word.find(' ') == std::string::npos, "a space in a word");
        octets += word.size();
    }
    check(octets <= line.size(), "words longer than their line");
}

// As the spec's ABNF writes counts: the number prints as its text.
void check_count(std::string_view text) {
    for (std::size_t digits : {1, 18, 19, 20}) {
        auto count = cloudproto::parse_count(text, digits);
        if (!count)
            continue;
        check(text.size() <= digits, "a count with too many digits");
        check(std::to_string(*count) == text, "a count reads differently");
    }
}

void check_capacity(std::string_view line) {
    auto capacity = cloudproto::parse_capacity(line);
    if (!capacity)
        return;
    auto again =
        cloudproto::parse_capacity(cloudproto::format_capacity(*capacity));
    check(again && again->runtime == capacity->runtime &&
              again->free_slots == capacity->free_slots &&
              again->queued_jobs == capacity->queued_jobs,
          "a CAPACITY line changed on its way through format_capacity");
}

void check_trace(std::string_view text) {
    auto names = cloudproto::parse_trace(text);
    if (!names)
        return;
    check(!names->empty(), "an empty trace accepted");
    cloudproto::RelayRoute route{names->size(), *names};
    check(route.trace_text() == text, "a trace reads differently");
    for (const auto& name : *names) {
        check(cloudproto::is_valid_node_name(name), "a bad name in a trace");
        check(route.crossed(name), "a trace does not hold its own name");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    check_words(text);
    check_count(text);
    check_capacity(text);
    check_trace(text);
    return 0;
}
