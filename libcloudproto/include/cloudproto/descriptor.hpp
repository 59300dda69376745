// The job descriptor: a TOML document that says how to run a script
// (proto-spec section "The descriptor").
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cloudproto {

// Resources a job asks for; a node clamps each to the maximum it
// announces (MAX-MEMORY-BYTES, ...). Absent: the node's maximum.
struct JobResources {
    std::optional<std::uint64_t> memory_bytes;
    std::optional<std::uint64_t> cpu_seconds;
    std::optional<std::uint64_t> processes;
    std::optional<std::uint64_t> disk_bytes;
    std::optional<std::uint64_t> open_files;
};

struct Descriptor {
    std::string runtime;
    std::vector<std::string> args; // one element is one argument
    std::string reply_to;
    std::optional<std::chrono::seconds> timeout;
    JobResources resources;
};

// Why a descriptor was refused: the field at fault ("args[2]", or
// "descriptor" for the document as a whole) and a sentence for a person.
struct DescriptorError {
    std::string field;
    std::string reason;

    std::string to_string() const; // "args[2]: must be a string"
};

using DescriptorResult = std::variant<Descriptor, DescriptorError>;

// Parses and validates. Unknown keys are ignored (compatibility rule).
DescriptorResult parse_descriptor(std::string_view toml_text);

// Runtime names are open tokens: [a-z0-9][a-z0-9._+-]*, at most
// max_runtime_name_bytes.
bool is_valid_runtime_name(std::string_view name);

// A plain ASCII addr-spec, local@domain, that cannot smuggle a header
// or a second recipient into a mail.
bool is_valid_address(std::string_view address);

} // namespace cloudproto
