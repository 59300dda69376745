#include "cloudproto/descriptor.hpp"

#include "cloudproto/protocol.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>

namespace cloudproto {

namespace {

// How much of the TOML parser's own message a reason keeps; the reason
// ends up in a 553 reply line, which has max_line_bytes.
constexpr std::size_t max_parser_message_bytes = 200;

// The TOML parser's message may quote the customer's octets; a reply
// line must stay printable ASCII and short.
std::string printable(std::string_view text) {
    std::string out;
    for (unsigned char c : text.substr(0, max_parser_message_bytes)) {
        if (c >= 0x20 && c < 0x7f)
            out += static_cast<char>(c);
        else
            out += fmt::format("\\x{:02x}", c);
    }
    if (text.size() > max_parser_message_bytes)
        out += "...";
    return out;
}

bool is_lower_or_digit(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool is_label_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
}

// RFC 5322 atext: printable ASCII but for space and the specials. The
// specials are what could end an address in a header, add a second
// recipient or start a comment or a quoted part.
bool is_atext(char c) {
    constexpr std::string_view specials = "()<>[]:;@\\,.\"";
    return c > 0x20 && c < 0x7f && specials.find(c) == std::string_view::npos;
}

// Dot-separated runs of allowed octets: no empty run, so no dot at
// either end and no two dots in a row.
template <typename Allowed>
bool is_dotted(std::string_view text, Allowed allowed) {
    std::size_t run = 0;
    for (char c : text) {
        if (c == '.') {
            if (run == 0)
                return false;
            run = 0;
        } else if (allowed(c)) {
            ++run;
        } else {
            return false;
        }
    }
    return run > 0;
}

DescriptorError error(std::string field, std::string reason) {
    return {std::move(field), std::move(reason)};
}

// A string the descriptor must have, copied into `out`.
std::optional<DescriptorError> required_string(const toml::table& doc,
                                               const char* key,
                                               std::string& out) {
    const toml::node* node = doc.get(key);
    if (node == nullptr)
        return error(key, "is required");
    if (!node->is_string())
        return error(key, "must be a string");
    out = node->as_string()->get();
    return std::nullopt;
}

// Each parse_ step fills one field of the descriptor, or says why not.
std::optional<DescriptorError> parse_runtime(const toml::table& doc,
                                             Descriptor& out) {
    if (auto e = required_string(doc, "runtime", out.runtime))
        return e;
    if (!is_valid_runtime_name(out.runtime))
        return error("runtime",
                     fmt::format("must be 1 to {} of a-z 0-9 . _ + -, "
                                 "beginning with a letter or digit",
                                 max_runtime_name_bytes));
    return std::nullopt;
}

std::optional<DescriptorError> parse_args(const toml::table& doc,
                                          Descriptor& out) {
    const toml::node* node = doc.get("args");
    if (node == nullptr)
        return std::nullopt;
    const toml::array* args = node->as_array();
    if (args == nullptr)
        return error("args", "must be an array of strings");
    if (args->size() > max_args)
        return error("args", fmt::format("has {} elements, at most {} are "
                                         "allowed",
                                         args->size(), max_args));

    for (std::size_t i = 0; i < args->size(); ++i) {
        std::string field = fmt::format("args[{}]", i);
        const toml::node& arg = (*args)[i];
        if (!arg.is_string())
            return error(field, "must be a string");

        const std::string& text = arg.as_string()->get();
        // An argv element ends at its first NUL: the rest would be lost.
        if (text.find('\0') != std::string::npos)
            return error(field, "must not contain NUL");
        if (text.size() > max_arg_bytes)
            return error(field, fmt::format("has {} octets, at most {} are "
                                            "allowed",
                                            text.size(), max_arg_bytes));
        out.args.push_back(text);
    }
    return std::nullopt;
}

std::optional<DescriptorError> parse_reply_to(const toml::table& doc,
                                              Descriptor& out) {
    if (auto e = required_string(doc, "reply_to", out.reply_to))
        return e;
    if (!is_valid_address(out.reply_to))
        return error("reply_to",
                     fmt::format("must be a plain ASCII address "
                                 "local@domain of at most {} octets",
                                 max_address_bytes));
    return std::nullopt;
}

// A whole number of at least 1, when the key is there.
std::optional<DescriptorError>
positive_integer(const toml::table& doc, const char* key,
                 std::optional<std::uint64_t>& out) {
    const toml::node* node = doc.get(key);
    if (node == nullptr)
        return std::nullopt;
    if (!node->is_integer())
        return error(key, "must be an integer");
    std::int64_t value = node->as_integer()->get();
    if (value < 1)
        return error(key, "must be at least 1");
    out = static_cast<std::uint64_t>(value);
    return std::nullopt;
}

// Only the lower bound is the norm's; the node compares the value with
// its own MAX-TIMEOUT-SECONDS.
std::optional<DescriptorError> parse_timeout(const toml::table& doc,
                                             Descriptor& out) {
    std::optional<std::uint64_t> seconds;
    if (auto e = positive_integer(doc, "timeout_seconds", seconds))
        return e;
    if (seconds)
        out.timeout = std::chrono::seconds{*seconds};
    return std::nullopt;
}

// What the job asks for; the node clamps each to its own maximum.
std::optional<DescriptorError> parse_resources(const toml::table& doc,
                                               Descriptor& out) {
    auto& r = out.resources;
    const std::pair<const char*, std::optional<std::uint64_t>*> fields[] = {
        {"memory_bytes", &r.memory_bytes}, {"cpu_seconds", &r.cpu_seconds},
        {"processes", &r.processes},       {"disk_bytes", &r.disk_bytes},
        {"open_files", &r.open_files},
    };
    for (const auto& [key, value] : fields) {
        if (auto e = positive_integer(doc, key, *value))
            return e;
    }
    return std::nullopt;
}

} // namespace

std::string DescriptorError::to_string() const {
    return fmt::format("{}: {}", field, reason);
}

DescriptorResult parse_descriptor(std::string_view toml_text) {
    toml::table doc;
    try {
        doc = toml::parse(toml_text);
    } catch (const toml::parse_error& e) {
        const toml::source_position& at = e.source().begin;
        return error("descriptor",
                     fmt::format("not valid TOML at line {}, column {}: {}",
                                 at.line, at.column,
                                 printable(e.description())));
    }

    Descriptor descriptor;
    for (auto step : {parse_runtime, parse_args, parse_reply_to,
                      parse_timeout, parse_resources}) {
        if (auto refused = step(doc, descriptor))
            return *std::move(refused);
    }
    return descriptor;
}

bool is_valid_runtime_name(std::string_view name) {
    if (name.empty() || name.size() > max_runtime_name_bytes)
        return false;
    if (!is_lower_or_digit(name.front()))
        return false;
    return std::all_of(name.begin() + 1, name.end(), [](char c) {
        return is_lower_or_digit(c) || c == '.' || c == '_' || c == '+' ||
               c == '-';
    });
}

bool is_valid_address(std::string_view address) {
    if (address.size() > max_address_bytes)
        return false;

    // Exactly one '@': a second one would make the split ambiguous.
    std::size_t at = address.find('@');
    if (at == std::string_view::npos ||
        address.find('@', at + 1) != std::string_view::npos)
        return false;

    std::string_view local = address.substr(0, at);
    std::string_view domain = address.substr(at + 1);
    return is_dotted(local, is_atext) && is_dotted(domain, is_label_char);
}

} // namespace cloudproto
