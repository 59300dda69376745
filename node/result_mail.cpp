#include "node/result_mail.hpp"

#include "node/mime.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace cloudnode {

namespace {

using cloudproto::JobReport;
using cloudproto::JobState;
using cloudproto::Outcome;

constexpr std::string_view subject_tag = "[cloudproto]";
// The job id already makes a Message-ID unique; this keeps a resent
// mail apart and leaves room for the field in 78 columns.
constexpr std::size_t message_id_random_bytes = 12;
constexpr std::size_t max_message_id_job_bytes = 64;
constexpr std::string_view fallback_domain = "cloudproto.invalid";

// Labels of the summary are padded to this width, "Arguments: " being
// the longest.
constexpr std::size_t label_columns = 11;

constexpr std::string_view preamble =
    "This is a MIME message: the job's result is in its parts.";

// One captured stream as the mail shows it.
struct Output {
    std::string_view name;  // "stdout" or "stderr"
    std::string_view label; // its line in the summary
    std::string_view bytes;
    std::uint64_t produced_bytes;
    bool truncated;

    std::string file_name() const { return fmt::format("{}.txt", name); }
};

// How the job ended, once short for the subject and once as a phrase
// for the summary ("exited 0" / "exited with status 0").
struct OutcomeText {
    std::string brief;
    std::string full;
};

OutcomeText describe_outcome(const JobReport& report,
                             const cloudproto::Descriptor& descriptor) {
    if (report.state == JobState::failed)
        return {"could not run", "could not run"};
    if (report.state != JobState::done)
        return {fmt::format("is {}", to_string(report.state)),
                fmt::format("is {}", to_string(report.state))};

    switch (report.outcome.value_or(Outcome::exited)) {
    case Outcome::exited:
        if (!report.exit_code)
            return {"finished", "finished"};
        return {fmt::format("exited {}", *report.exit_code),
                fmt::format("exited with status {}", *report.exit_code)};
    case Outcome::signalled: {
        std::string text =
            report.signal ? fmt::format("killed by signal {}", *report.signal)
                          : std::string("killed by a signal");
        return {text, text};
    }
    case Outcome::timeout: {
        // The descriptor's limit is what the customer asked for; the
        // duration stands in when the node's default applied.
        std::optional<long long> limit_s;
        if (descriptor.timeout)
            limit_s = descriptor.timeout->count();
        else if (report.duration)
            limit_s = (report.duration->count() + 500) / 1000;
        std::string text = limit_s
                               ? fmt::format("timed out after {} s", *limit_s)
                               : std::string("timed out");
        return {text, text};
    }
    }
    return {"finished", "finished"};
}

// Output goes in the summary only when a person can read it there as it
// is: text, short, and with line ends a mail reader shows faithfully.
bool can_show_inline(std::string_view bytes, std::size_t limit_bytes) {
    if (bytes.size() > limit_bytes || !mime::is_valid_utf8(bytes))
        return false;
    std::size_t line_bytes = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        char c = bytes[i];
        if (c == '\0')
            return false;
        if (c == '\r' && (i + 1 == bytes.size() || bytes[i + 1] != '\n'))
            return false;
        line_bytes = c == '\n' ? 0 : line_bytes + 1;
        if (line_bytes > mime::max_line_bytes)
            return false;
    }
    return true;
}

bool is_text(std::string_view bytes) {
    return mime::is_valid_utf8(bytes) &&
           bytes.find('\0') == std::string_view::npos;
}

// An argument between double quotes, so that spaces and empty arguments
// show. Quotes and backslashes are escaped before visible() adds its own
// escapes, so every argument reads back one way only.
std::string quote_argument(std::string_view argument) {
    std::string escaped;
    for (char c : argument) {
        if (c == '"' || c == '\\')
            escaped += '\\';
        escaped += c;
    }
    return fmt::format("\"{}\"", mime::visible(escaped));
}

std::string
format_time(const std::optional<cloudproto::Clock::time_point>& when) {
    return when ? cloudproto::format_timestamp(*when) : std::string("-");
}

std::string
format_duration(const std::optional<std::chrono::milliseconds>& duration) {
    if (!duration)
        return "-";
    long long ms = duration->count();
    return fmt::format("{}{}.{:03} s", ms < 0 ? "-" : "",
                       (ms < 0 ? -ms : ms) / 1000, (ms < 0 ? -ms : ms) % 1000);
}

// "4 limits uid" -> "level 4 (limits, uid)".
std::string containment_text(std::string_view described) {
    std::string text = mime::visible(described);
    auto space = text.find(' ');
    if (space == std::string::npos)
        return "level " + text;
    std::string layers = text.substr(space + 1);
    for (std::size_t at = 0; (at = layers.find(' ', at)) != std::string::npos;
         at += 2)
        layers.replace(at, 1, ", ");
    return fmt::format("level {} ({})", text.substr(0, space), layers);
}

std::string size_note(const Output& output, bool inline_shown) {
    if (output.bytes.empty() && output.produced_bytes == 0)
        return "(no output)";
    if (output.bytes.empty())
        return "(none kept)";
    if (inline_shown)
        return fmt::format("{} bytes, shown below", output.bytes.size());
    return fmt::format("{} bytes, attached as {}", output.bytes.size(),
                       output.file_name());
}

// The host part of the sender's address ("cloudproto <a@b.example>"
// gives b.example), reduced to what a Message-ID's right side allows.
std::string domain_of(std::string_view from) {
    std::size_t at = from.rfind('@');
    if (at == std::string_view::npos)
        return std::string(fallback_domain);
    std::string domain;
    for (char c : from.substr(at + 1)) {
        bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '.' || c == '-';
        if (!allowed)
            break;
        domain += c;
    }
    return domain.empty() ? std::string(fallback_domain) : domain;
}

// <job-id.random@domain>; the job id part keeps only the characters job
// ids are made of, so a damaged id cannot break the field.
std::string message_id(std::string_view job_id, std::string_view from) {
    std::string local;
    for (char c : job_id.substr(0, max_message_id_job_bytes)) {
        bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '-' || c == '_';
        local += allowed ? c : '_';
    }
    if (local.empty())
        local = "job";
    return fmt::format("<{}.{}@{}>", local,
                       mime::random_hex(message_id_random_bytes),
                       domain_of(from));
}

void add_field(mime::QuotedPrintableWriter& body, std::string_view label,
               std::string_view value) {
    std::string column = label.empty() ? "" : fmt::format("{}:", label);
    body.text(fmt::format("{:<{}}{}\n", column, label_columns, value));
}

// Output shown inside the summary, after a heading that gives its exact
// length so that a program can take it back out byte for byte.
void add_inline_output(mime::QuotedPrintableWriter& body,
                       const Output& output) {
    body.text(fmt::format("\n---- {}, {} bytes ----\n", output.name,
                          output.bytes.size()));
    body.exact(output.bytes);
    if (output.bytes.back() != '\n')
        body.text("\n");
    body.text(fmt::format("---- end of {} ----\n", output.name));
}

// The part a person reads first: what ran, where, how it ended, when,
// and where its output is.
std::string summary_part(const ResultMail& mail, const OutcomeText& outcome,
                         std::span<const Output> outputs, bool inline_shown) {
    const JobReport& report = mail.report;
    std::string job_id = mime::visible(report.job_id);
    mime::QuotedPrintableWriter body;

    // Headline and what ran
    body.text(fmt::format("Job {} {}.\n\n", job_id, outcome.full));
    add_field(body, "Job", job_id);
    add_field(body, "Runtime",
              mime::visible(report.runtime.empty() ? mail.descriptor.runtime
                                                   : report.runtime));
    if (mail.descriptor.args.empty())
        add_field(body, "Arguments", "(none)");
    for (std::size_t i = 0; i < mail.descriptor.args.size(); ++i)
        add_field(body, i == 0 ? "Arguments" : "",
                  quote_argument(mail.descriptor.args[i]));
    add_field(body, "Node", mime::visible(report.node));
    if (!report.containment.empty())
        add_field(body, "Contained", containment_text(report.containment));

    // How and when it ended
    add_field(body, "State", to_string(report.state));
    add_field(body, "Outcome", outcome.full);
    if (!report.error.empty())
        add_field(body, "Error", mime::visible(report.error));
    if (report.limit_hit == "memory")
        add_field(body, "Limit", "the kernel ended it at its memory limit");
    add_field(body, "Accepted", format_time(report.accepted));
    add_field(body, "Started", format_time(report.started));
    add_field(body, "Finished", format_time(report.finished));
    add_field(body, "Duration", format_duration(report.duration));

    // Where the output is
    for (const Output& output : outputs)
        add_field(body, output.label, size_note(output, inline_shown));
    bool noted = false;
    for (const Output& output : outputs) {
        if (!output.truncated)
            continue;
        body.text(fmt::format("{}{} was {} bytes; the first {} are kept.\n",
                              noted ? "" : "\n", output.name,
                              output.produced_bytes, output.bytes.size()));
        noted = true;
    }
    if (inline_shown)
        for (const Output& output : outputs)
            if (!output.bytes.empty())
                add_inline_output(body, output);

    std::string part = "Content-Type: text/plain; charset=UTF-8\r\n"
                       "Content-Transfer-Encoding: quoted-printable\r\n"
                       "Content-Disposition: inline\r\n"
                       "\r\n";
    return part + body.finish();
}

// Base64 keeps every byte, NUL and lone CR included; text is labelled
// as such so that mail readers can show it, anything else is binary.
std::string attachment_part(const Output& output) {
    std::string_view type = is_text(output.bytes) ? "text/plain; charset=UTF-8"
                                                  : "application/octet-stream";
    return fmt::format("Content-Type: {}\r\n"
                       "Content-Transfer-Encoding: base64\r\n"
                       "Content-Disposition: attachment; filename=\"{}\"\r\n"
                       "\r\n"
                       "{}",
                       type, output.file_name(),
                       mime::encode_base64(output.bytes));
}

} // namespace

// Every value that came from the job, the customer or the configuration
// reaches a header only through mime::unstructured_field, address_field
// or message_id, none of which can emit CR, LF or NUL. Randomness is
// drawn in a fixed order (Message-ID, then boundary), so a fixed source
// gives the same message byte for byte.
std::string build_result_mail(const ResultMail& mail,
                              const ResultMailSettings& settings,
                              cloudproto::Clock::time_point now) {
    const JobReport& report = mail.report;
    OutcomeText outcome = describe_outcome(report, mail.descriptor);
    std::array<Output, 2> outputs{
        Output{"stdout", "Stdout", mail.out, report.stdout_bytes,
               report.stdout_truncated},
        Output{"stderr", "Stderr", mail.err, report.stderr_bytes,
               report.stderr_truncated}};

    // Parts
    bool inline_shown =
        can_show_inline(mail.out, settings.inline_limit_bytes) &&
        can_show_inline(mail.err, settings.inline_limit_bytes);
    std::vector<std::string> parts;
    parts.push_back(summary_part(mail, outcome, outputs, inline_shown));
    if (!inline_shown)
        for (const Output& output : outputs)
            if (!output.bytes.empty())
                parts.push_back(attachment_part(output));

    // Header fields
    std::string id = message_id(report.job_id, settings.from);
    std::vector<std::string_view> contents{preamble};
    contents.insert(contents.end(), parts.begin(), parts.end());
    std::string boundary = mime::choose_boundary(contents);

    std::string message;
    message += mime::address_field("From", settings.from);
    message += mime::address_field("To", mail.descriptor.reply_to);
    message += fmt::format("Date: {}\r\n", mime::format_date(now));
    message += fmt::format("Message-ID: {}\r\n", id);
    message += mime::unstructured_field(
        "Subject",
        fmt::format("{} job {} {}", subject_tag, report.job_id, outcome.brief));
    message += "MIME-Version: 1.0\r\n";
    message += fmt::format(
        "Content-Type: multipart/mixed;\r\n boundary=\"{}\"\r\n", boundary);
    message += "Auto-Submitted: auto-generated\r\n";
    message += mime::unstructured_field("X-Cloudproto-Job", report.job_id);

    // Body: each part ends in CRLF, and the CRLF before a delimiter
    // belongs to the delimiter (RFC 2046 section 5.1.1)
    message += "\r\n";
    message += preamble;
    for (const std::string& part : parts)
        message += fmt::format("\r\n--{}\r\n{}", boundary, part);
    message += fmt::format("\r\n--{}--\r\n", boundary);
    return message;
}

} // namespace cloudnode
