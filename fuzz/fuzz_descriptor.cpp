// Fuzzes parse_descriptor (descriptor.hpp), toml++'s parser included,
// on a customer's descriptor octets. An accepted descriptor must meet
// every rule of the norm; a refusal must fit, as the node sends it, in
// one printable 553 reply line.
#include "cloudproto/descriptor.hpp"
#include "cloudproto/protocol.hpp"
#include "cloudproto/reply.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

using cloudproto::Descriptor;
using cloudproto::DescriptorError;

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_descriptor: %s\n", what);
        std::abort();
    }
}

void check_accepted(const Descriptor& d) {
    check(cloudproto::is_valid_runtime_name(d.runtime), "runtime accepted");
    check(cloudproto::is_valid_address(d.reply_to), "reply_to accepted");
    check(d.args.size() <= cloudproto::max_args, "too many args accepted");
    for (const auto& arg : d.args) {
        check(arg.size() <= cloudproto::max_arg_bytes, "long arg accepted");
        check(arg.find('\0') == std::string::npos, "NUL in an arg accepted");
    }
    check(!d.timeout || d.timeout->count() >= 1, "timeout below 1 accepted");
    const auto& r = d.resources;
    for (const auto& value : {r.memory_bytes, r.cpu_seconds, r.processes,
                              r.disk_bytes, r.open_files})
        check(!value || *value >= 1, "a resource below 1 accepted");
}

// The reply session.cpp sends for a refused descriptor.
void check_refused(const DescriptorError& e) {
    check(!e.field.empty() && !e.reason.empty(), "refusal without a why");
    std::string line =
        cloudproto::encode_reply(cloudproto::reply_code::descriptor_rejected,
                                 "descriptor rejected: " + e.to_string());
    check(line.size() <= cloudproto::max_line_bytes, "553 line too long");
    for (std::size_t i = 0; i + 2 < line.size(); ++i) {
        auto c = static_cast<unsigned char>(line[i]);
        check(c >= 0x20 && c <= 0x7e, "553 line holds unprintable octets");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
    auto parsed = cloudproto::parse_descriptor(
        {reinterpret_cast<const char*>(data), size});
    if (auto* d = std::get_if<Descriptor>(&parsed))
        check_accepted(*d);
    else
        check_refused(std::get<DescriptorError>(parsed));
    return 0;
}
