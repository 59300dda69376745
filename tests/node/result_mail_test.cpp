#include "node/result_mail.hpp"

#include "node/mime.hpp"

#include "support/mime_reader.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using namespace std::string_literals;
using cloudnode::build_result_mail;
using cloudnode::ResultMail;
using cloudnode::ResultMailSettings;
using cloudproto::Clock;
using cloudproto::Descriptor;
using cloudproto::JobReport;
using cloudproto::JobState;
using cloudproto::Outcome;

namespace {

using namespace test_support;

void check_fields(const Entity& message) {
    CHECK(message.headers.size() == expected_fields.size());
    for (const std::string& name : expected_fields) {
        INFO("field " << name);
        CHECK(message.count(name) == 1);
    }
}

// --- Inputs -------------------------------------------------------------

const Clock::time_point mail_time =
    std::chrono::sys_days{std::chrono::year{2026} / 12 / 3} + 17h + 42min + 1s;

JobReport sample_report() {
    JobReport report;
    report.job_id = "3f2a9c0d1e8b7a6f5d4c";
    report.state = JobState::done;
    report.runtime = "python3";
    report.node = "node-1.provider.example";
    report.accepted = mail_time - 5s;
    report.started = mail_time - 3s;
    report.finished = mail_time - 744ms;
    report.outcome = Outcome::exited;
    report.exit_code = 0;
    report.duration = 2256ms;
    return report;
}

Descriptor sample_descriptor() {
    Descriptor descriptor;
    descriptor.runtime = "python3";
    descriptor.args = {"main.py", "--name", "two words"};
    descriptor.reply_to = "alice@customer.example";
    descriptor.timeout = 30s;
    return descriptor;
}

ResultMailSettings sample_settings() {
    return {"cloudproto <results@provider.example>", 4096};
}

std::string build(JobReport report, const Descriptor& descriptor,
                  std::string_view out, std::string_view err,
                  const ResultMailSettings& settings = sample_settings()) {
    if (report.stdout_bytes == 0)
        report.stdout_bytes = out.size();
    if (report.stderr_bytes == 0)
        report.stderr_bytes = err.size();
    return build_result_mail({report, descriptor, out, err}, settings,
                             mail_time);
}

// A fixed random source: the bytes 0, 1, 2, ... from `seed` on, anew
// for each guard, so two builds under equal guards draw the same.
unsigned char next_random_byte = 0;

void counting_source(unsigned char* out, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i)
        out[i] = next_random_byte++;
}

void constant_source(unsigned char* out, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i)
        out[i] = 0;
}

class FixedRandom {
public:
    explicit FixedRandom(unsigned char seed,
                         cloudnode::mime::RandomSource source = counting_source)
        : previous_(cloudnode::mime::set_random_source(source)) {
        next_random_byte = seed;
    }
    ~FixedRandom() { cloudnode::mime::set_random_source(previous_); }
    FixedRandom(const FixedRandom&) = delete;
    FixedRandom& operator=(const FixedRandom&) = delete;

private:
    cloudnode::mime::RandomSource previous_;
};

std::string text_lines(std::size_t size) {
    std::string out;
    for (int n = 0; out.size() < size; ++n)
        out += "line " + std::to_string(n) + " of the job's output\n";
    out.resize(size);
    return out;
}

} // namespace

// --- Outputs: each comes back byte for byte -----------------------------

TEST_CASE("outputs come back exactly, inline or attached") {
    enum class Shown { inline_, attached, nowhere };
    struct Case {
        const char* name;
        std::string out;
        std::string err;
        Shown shown;
    };
    const std::string five_thousand(5000, 'x');
    const Case cases[] = {
        {"plain text", "hello\nworld\n", "", Shown::inline_},
        {"both streams", "result 42\n", "warning: slow\n", Shown::inline_},
        {"lines that are a single dot", ".\nabc\n.\n", ".", Shown::inline_},
        {"lines starting with two dots", "..x\n..\n...\n", "..",
         Shown::inline_},
        {"From at a line start", "From here\n>From there\n", "",
         Shown::inline_},
        {"quoted-printable look-alikes", "a=b =3D =\n=\n=20\n", "",
         Shown::inline_},
        {"white space at line ends", "space \ntab\t\n \n\t", "",
         Shown::inline_},
        {"CRLF line ends", "one\r\ntwo\r\n", "", Shown::inline_},
        {"no newline at the end", "last line", "", Shown::inline_},
        {"UTF-8 text",
         "caf\xc3\xa9 \xc3\xa9\n\xe6\xbc\xa2\xe5\xad\x97\n"
         "\xf0\x9f\x98\x80 done\n",
         "", Shown::inline_},
        {"a 5000-character line", five_thousand + "\n", "warn\n",
         Shown::attached},
        {"a line of 998 characters", std::string(998, 'y') + "\n", "",
         Shown::inline_},
        {"a line of 999 characters", std::string(999, 'y') + "\n", "",
         Shown::attached},
        {"invalid UTF-8", "ok \xff\xfe \xc3\n\xed\xa0\x80\n", "",
         Shown::attached},
        {"NUL bytes", "a\0b\n\0"s, "", Shown::attached},
        {"CR alone", "progress 10%\rprogress 100%\n", "", Shown::attached},
        {"CR at the very end", "done\r", "", Shown::attached},
        {"over the inline limit", text_lines(5000), "", Shown::attached},
        {"3 MB of output", every_byte_value(3 * 1024 * 1024),
         text_lines(3 * 1024 * 1024), Shown::attached},
        {"only stderr", "", "error: no such file\n", Shown::inline_},
        {"empty output", "", "", Shown::nowhere},
    };

    for (const Case& c : cases) {
        INFO("case: " << std::string(c.name));
        std::string message =
            build(sample_report(), sample_descriptor(), c.out, c.err);

        check_lines(message, cloudnode::mime::max_generated_line_bytes);
        ReadMail mail = read_mail(message);
        check_fields(mail.message);
        CHECK(mail.output["stdout"] == c.out);
        CHECK(mail.output["stderr"] == c.err);

        // Where the output went
        std::size_t attachments = mail.parts.size() - 1;
        switch (c.shown) {
        case Shown::inline_:
            CHECK(attachments == 0);
            CHECK(mail.summary.find("shown below") != std::string::npos);
            break;
        case Shown::attached:
            CHECK(attachments == !c.out.empty() + !c.err.empty());
            CHECK(mail.summary.find("attached as") != std::string::npos);
            break;
        case Shown::nowhere:
            CHECK(attachments == 0);
            CHECK(mail.summary.find("Stdout:    (no output)\r\n") !=
                  std::string::npos);
            CHECK(mail.summary.find("Stderr:    (no output)\r\n") !=
                  std::string::npos);
            break;
        }

        // A real MIME parser agrees
        if (auto python = read_with_python(message)) {
            CHECK(python->defects == "");
            CHECK(python->type == "multipart/mixed");
            CHECK(python->out == c.out);
            CHECK(python->err == c.err);
        }
    }
}

TEST_CASE("attachments say whether they are text") {
    struct Case {
        const char* name;
        std::string out;
        const char* type;
    };
    const Case cases[] = {
        {"long UTF-8 text", text_lines(10000), "text/plain; charset=UTF-8"},
        {"lone CR is still text", "a\rb\n", "text/plain; charset=UTF-8"},
        {"invalid UTF-8", "\xff\n", "application/octet-stream"},
        {"NUL", "a\0b"s, "application/octet-stream"},
    };
    for (const Case& c : cases) {
        INFO("case: " << std::string(c.name));
        ReadMail mail = read_mail(build(sample_report(), sample_descriptor(),
                                        c.out, "", {"a@provider.example", 0}));
        CHECK(mail.attachment_type["stdout"] == c.type);
        CHECK(mail.output["stdout"] == c.out);
    }
}

TEST_CASE("the summary says what ran, how it ended and when") {
    JobReport report = sample_report();
    report.stdout_bytes = 5242880;
    report.stdout_truncated = true;
    std::string out(1048576, 'o');
    Descriptor descriptor = sample_descriptor();
    descriptor.args.push_back("");
    descriptor.args.push_back("say \"hi\"\nnow");
    descriptor.args.push_back("C:\\dir\\n");
    ReadMail mail = read_mail(build(report, descriptor, out, "e\n"));

    const std::string expected[] = {
        "Job 3f2a9c0d1e8b7a6f5d4c exited with status 0.\r\n\r\n",
        "Job:       3f2a9c0d1e8b7a6f5d4c\r\n",
        "Runtime:   python3\r\n",
        "Arguments: \"main.py\"\r\n"
        "           \"--name\"\r\n"
        "           \"two words\"\r\n"
        "           \"\"\r\n"
        "           \"say \\\"hi\\\"\\nnow\"\r\n"
        "           \"C:\\\\dir\\\\n\"\r\n",
        "Node:      node-1.provider.example\r\n",
        "State:     done\r\n",
        "Outcome:   exited with status 0\r\n",
        "Accepted:  " + cloudproto::format_timestamp(mail_time - 5s) + "\r\n",
        "Started:   " + cloudproto::format_timestamp(mail_time - 3s) + "\r\n",
        "Finished:  " + cloudproto::format_timestamp(mail_time - 744ms) +
            "\r\n",
        "Duration:  2.256 s\r\n",
        "Stdout:    1048576 bytes, attached as stdout.txt\r\n",
        "Stderr:    2 bytes, attached as stderr.txt\r\n",
        "stdout was 5242880 bytes; the first 1048576 are kept.\r\n",
    };
    for (const std::string& line : expected) {
        CAPTURE(line);
        CHECK(mail.summary.find(line) != std::string::npos);
    }
    CHECK(mail.output["stdout"] == out);
}

// --- Header fields ------------------------------------------------------

TEST_CASE("the subject names the job and its outcome") {
    struct Case {
        const char* name;
        JobState state;
        std::optional<Outcome> outcome;
        std::optional<int> exit_code;
        std::optional<int> signal;
        std::optional<std::chrono::seconds> timeout;
        std::string error;
        std::string subject_end;
        std::string summary_line;
    };
    const Case cases[] = {
        {"exit 0",
         JobState::done,
         Outcome::exited,
         0,
         {},
         30s,
         "",
         "exited 0",
         "Outcome:   exited with status 0\r\n"},
        {"exit 3",
         JobState::done,
         Outcome::exited,
         3,
         {},
         30s,
         "",
         "exited 3",
         "Outcome:   exited with status 3\r\n"},
        {"signal",
         JobState::done,
         Outcome::signalled,
         {},
         9,
         30s,
         "",
         "killed by signal 9",
         "Outcome:   killed by signal 9\r\n"},
        {"timeout",
         JobState::done,
         Outcome::timeout,
         {},
         {},
         30s,
         "",
         "timed out after 30 s",
         "Outcome:   timed out after 30 s\r\n"},
        {"timeout by default",
         JobState::done,
         Outcome::timeout,
         {},
         {},
         {},
         "",
         "timed out after 2 s",
         "Outcome:   timed out after 2 s\r\n"},
        {"failed",
         JobState::failed,
         {},
         {},
         {},
         30s,
         "runtime python3 is not installed",
         "could not run",
         "Error:     runtime python3 is not installed\r\n"},
    };
    for (const Case& c : cases) {
        INFO("case: " << std::string(c.name));
        JobReport report = sample_report();
        report.state = c.state;
        report.outcome = c.outcome;
        report.exit_code = c.exit_code;
        report.signal = c.signal;
        report.error = c.error;
        Descriptor descriptor = sample_descriptor();
        descriptor.timeout = c.timeout;

        std::string message = build(report, descriptor, "", "");
        ReadMail mail = read_mail(message);
        std::string subject =
            "[cloudproto] job 3f2a9c0d1e8b7a6f5d4c " + c.subject_end;
        CHECK(mail.message.field("Subject") == subject);
        CHECK(mail.summary.find(c.summary_line) != std::string::npos);
        if (auto python = read_with_python(message))
            CHECK(python->subject == subject);
    }
}

TEST_CASE("a subject that is not ASCII, or too long, is RFC 2047 encoded") {
    struct Case {
        const char* name;
        std::string job_id;
        bool encoded;
    };
    std::string long_unicode;
    for (int i = 0; i < 40; ++i)
        long_unicode += "\xc3\xa9\xe6\xbc\xa2\xf0\x9f\x98\x80";
    const Case cases[] = {
        {"plain", "3f2a9c0d1e8b7a6f5d4c", false},
        {"accent",
         "j\xc3\xb6"
         "b-0123456789abcdef",
         true},
        {"CJK and emoji", "\xe6\xbc\xa2\xe5\xad\x97-\xf0\x9f\x98\x80-job",
         true},
        {"long, not ASCII", long_unicode, true},
        {"long ASCII without spaces", std::string(1000, 'a'), true},
        {"long ASCII that folds",
         std::string(900, 'a') + " " + std::string(60, 'b'), false},
    };
    for (const Case& c : cases) {
        INFO("case: " << std::string(c.name));
        JobReport report = sample_report();
        report.job_id = c.job_id;
        std::string message = build(report, sample_descriptor(), "", "");
        check_lines(message, cloudnode::mime::max_line_bytes);

        ReadMail mail = read_mail(message);
        std::string subject = "[cloudproto] job " + c.job_id + " exited 0";
        std::string raw = mail.message.field("Subject");
        CHECK((raw.find("=?UTF-8?B?") != std::string::npos) == c.encoded);
        CHECK(decode_unstructured(raw) == subject);
        CHECK(decode_unstructured(mail.message.field("X-Cloudproto-Job")) ==
              c.job_id);
        if (auto python = read_with_python(message))
            CHECK(python->subject == subject);
    }
}

TEST_CASE("nothing from the job or the customer can add a header") {
    struct Case {
        const char* name;
        std::string from;
        std::string reply_to;
        std::string job_id;
    };
    const Case cases[] = {
        {"CR LF in reply_to", "results@provider.example",
         "alice@customer.example\r\nBcc: mallory@evil.example",
         "3f2a9c0d1e8b7a6f5d4c"},
        {"bare LF in reply_to", "results@provider.example",
         "alice@customer.example\nBcc: mallory@evil.example",
         "3f2a9c0d1e8b7a6f5d4c"},
        {"NUL in reply_to", "results@provider.example",
         "alice@customer.example\0Bcc: x"s, "3f2a9c0d1e8b7a6f5d4c"},
        {"CR LF in the job id", "results@provider.example",
         "alice@customer.example",
         "3f2a\r\nBcc: mallory@evil.example\r\n\r\nforged body"},
        {"CR LF and UTF-8 in the job id", "results@provider.example",
         "alice@customer.example",
         "j\xc3\xb6"
         "b\r\nBcc: m@evil.example"},
        {"CR LF in the configured sender", "a@b.example\r\nBcc: x@y",
         "alice@customer.example", "3f2a9c0d1e8b7a6f5d4c"},
        {"an overlong address", "results@provider.example",
         std::string(2000, '\n') + "@x", "3f2a9c0d1e8b7a6f5d4c"},
    };
    for (const Case& c : cases) {
        INFO("case: " << std::string(c.name));
        JobReport report = sample_report();
        report.job_id = c.job_id;
        Descriptor descriptor = sample_descriptor();
        descriptor.reply_to = c.reply_to;
        std::string message =
            build(report, descriptor, "out\n", "", {c.from, 4096});

        check_lines(message, cloudnode::mime::max_line_bytes);
        ReadMail mail = read_mail(message);
        check_fields(mail.message);
        CHECK(mail.message.count("Bcc") == 0);
        CHECK(mail.output["stdout"] == "out\n");
        std::string header_block = message.substr(0, message.find("\r\n\r\n"));
        CHECK(header_block.find("\r\nBcc") == std::string::npos);
        if (auto python = read_with_python(message)) {
            CHECK(python->defects == "");
            CHECK(python->out == "out\n");
        }
    }
}

TEST_CASE("the fixed header fields") {
    ReadMail mail =
        read_mail(build(sample_report(), sample_descriptor(), "", ""));
    const Entity& m = mail.message;
    CHECK(m.field("From") == "cloudproto <results@provider.example>");
    CHECK(m.field("To") == "alice@customer.example");
    CHECK(m.field("Date") == "Thu, 03 Dec 2026 17:42:01 +0000");
    CHECK(m.field("MIME-Version") == "1.0");
    CHECK(m.field("Auto-Submitted") == "auto-generated");
    CHECK(m.field("X-Cloudproto-Job") == "3f2a9c0d1e8b7a6f5d4c");

    std::string id = m.field("Message-ID");
    CHECK(id.starts_with("<3f2a9c0d1e8b7a6f5d4c."));
    CHECK(id.ends_with("@provider.example>"));
    CHECK(id.size() == std::string("<3f2a9c0d1e8b7a6f5d4c.").size() + 24 +
                           std::string("@provider.example>").size());
}

TEST_CASE("dates in RFC 5322 form") {
    using std::chrono::sys_days;
    using std::chrono::year;
    struct Case {
        Clock::time_point when;
        const char* text;
    };
    const Case cases[] = {
        {Clock::time_point{}, "Thu, 01 Jan 1970 00:00:00 +0000"},
        {sys_days{year{2024} / 2 / 29} + 23h + 59min + 59s + 999ms,
         "Thu, 29 Feb 2024 23:59:59 +0000"},
        {sys_days{year{2000} / 3 / 1} + 1h + 2min + 3s,
         "Wed, 01 Mar 2000 01:02:03 +0000"},
        {sys_days{year{1999} / 12 / 31}, "Fri, 31 Dec 1999 00:00:00 +0000"},
    };
    for (const Case& c : cases)
        CHECK(cloudnode::mime::format_date(c.when) == c.text);
}

// --- Randomness ---------------------------------------------------------

TEST_CASE("a fixed random source gives the same message byte for byte") {
    std::string out = "hello\n";
    std::string first, second, other;
    {
        FixedRandom random(7);
        first = build(sample_report(), sample_descriptor(), out, "");
    }
    {
        FixedRandom random(7);
        second = build(sample_report(), sample_descriptor(), out, "");
    }
    {
        FixedRandom random(99);
        other = build(sample_report(), sample_descriptor(), out, "");
    }
    CHECK(first == second);
    CHECK(first != other);
}

TEST_CASE("randomness reaches only the Message-ID and the boundary") {
    std::string out = text_lines(100000);
    std::string a = build(sample_report(), sample_descriptor(), out, "x\n");
    std::string b = build(sample_report(), sample_descriptor(), out, "x\n");
    REQUIRE(a != b);

    // Put b's random values in a: what remains must be equal
    ReadMail mail_a = read_mail(a);
    ReadMail mail_b = read_mail(b);
    auto swap_all = [](std::string text, const std::string& from,
                       const std::string& to) {
        for (std::size_t at = text.find(from); at != std::string::npos;
             at = text.find(from, at + to.size()))
            text.replace(at, from.size(), to);
        return text;
    };
    std::string ba =
        parameter(mail_a.message.field("Content-Type"), "boundary");
    std::string bb =
        parameter(mail_b.message.field("Content-Type"), "boundary");
    CHECK(ba != bb);
    a = swap_all(a, ba, bb);
    a = swap_all(a, mail_a.message.field("Message-ID"),
                 mail_b.message.field("Message-ID"));
    CHECK(a == b);
}

TEST_CASE("the boundary avoids what the parts contain") {
    namespace mime = cloudnode::mime;
    std::string first;
    {
        FixedRandom random(1);
        first = mime::choose_boundary({});
    }
    CHECK(first.starts_with("=_cloudproto_"));

    std::string part = "text\r\n--" + first + "\r\nmore";
    std::vector<std::string_view> parts{part};
    {
        FixedRandom random(1);
        std::string second = mime::choose_boundary(parts);
        CHECK(second != first);
        CHECK(part.find(second) == std::string::npos);
    }
    {
        // A source that never changes cannot get past the clash
        FixedRandom random(0, constant_source);
        std::string stuck = mime::choose_boundary({});
        std::vector<std::string_view> clash{stuck};
        CHECK_THROWS_AS(mime::choose_boundary(clash), std::runtime_error);
    }
}
