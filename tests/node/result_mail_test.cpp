#include "node/result_mail.hpp"

#include "node/mime.hpp"

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

// --- A small MIME reader, for these tests only --------------------------
//
// It knows just what a result mail uses, and fails loudly on the rest.

struct Header {
    std::string name;
    std::string value; // unfolded, not decoded
};

struct Entity {
    std::vector<Header> headers;
    std::string body;

    int count(std::string_view name) const {
        int n = 0;
        for (const Header& h : headers)
            n += h.name == name;
        return n;
    }

    std::string field(std::string_view name) const {
        for (const Header& h : headers)
            if (h.name == name)
                return h.value;
        return {};
    }
};

Entity read_entity(std::string_view text) {
    Entity entity;
    std::size_t end = text.find("\r\n\r\n");
    REQUIRE(end != std::string_view::npos);
    entity.body = std::string(text.substr(end + 4));

    std::string_view block = text.substr(0, end + 2);
    while (!block.empty()) {
        std::size_t eol = block.find("\r\n");
        std::string_view line = block.substr(0, eol);
        block.remove_prefix(eol + 2);
        if (line.front() == ' ' || line.front() == '\t') {
            REQUIRE(!entity.headers.empty());
            entity.headers.back().value += line; // unfolding drops CRLF
            continue;
        }
        std::size_t colon = line.find(':');
        REQUIRE(colon != std::string_view::npos);
        std::string_view value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ')
            value.remove_prefix(1);
        entity.headers.push_back(
            {std::string(line.substr(0, colon)), std::string(value)});
    }
    return entity;
}

// A parameter of a structured field: boundary="x" or filename="x".
std::string parameter(std::string_view field, std::string_view name) {
    std::string key = std::string(name) + "=\"";
    std::size_t start = field.find(key);
    if (start == std::string_view::npos)
        return {};
    start += key.size();
    return std::string(field.substr(start, field.find('"', start) - start));
}

std::vector<Entity> read_multipart(std::string_view body,
                                   std::string_view boundary) {
    std::string delimiter = "\r\n--" + std::string(boundary);
    std::vector<Entity> parts;
    std::size_t at = body.find(delimiter);
    REQUIRE(at != std::string_view::npos);
    while (true) {
        std::size_t start = at + delimiter.size();
        if (body.substr(start, 2) == "--") {
            CHECK(body.substr(start) == "--\r\n");
            break;
        }
        REQUIRE(body.substr(start, 2) == "\r\n");
        std::size_t next = body.find(delimiter, start);
        REQUIRE(next != std::string_view::npos);
        parts.push_back(read_entity(body.substr(start + 2, next - start - 2)));
        at = next;
    }
    return parts;
}

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

std::string decode_base64(std::string_view text) {
    std::string out;
    std::uint32_t bits = 0;
    int count = 0;
    std::size_t strangers = 0;
    for (char c : text) {
        if (c == '\r' || c == '\n' || c == '=')
            continue;
        int value = base64_value(c);
        if (value < 0) {
            ++strangers;
            continue;
        }
        bits = bits << 6 | static_cast<std::uint32_t>(value);
        count += 6;
        if (count >= 8) {
            count -= 8;
            out += static_cast<char>(bits >> count & 0xFF);
        }
    }
    CHECK(strangers == 0);
    return out;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

std::string decode_quoted_printable(std::string_view text) {
    std::string out;
    std::size_t bad_escapes = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '=') {
            out += text[i];
            continue;
        }
        if (text.substr(i + 1, 2) == "\r\n") {
            i += 2;
            continue;
        }
        int high = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
        int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (high < 0 || low < 0) {
            ++bad_escapes;
            continue;
        }
        out += static_cast<char>(high * 16 + low);
        i += 2;
    }
    CHECK(bad_escapes == 0);
    return out;
}

std::string decode_body(const Entity& part) {
    std::string encoding = part.field("Content-Transfer-Encoding");
    if (encoding == "base64")
        return decode_base64(part.body);
    REQUIRE(encoding == "quoted-printable");
    return decode_quoted_printable(part.body);
}

// RFC 2047 for the one form we write, =?UTF-8?B?...?=; white space
// between two encoded-words is dropped, as section 6.2 asks.
std::string decode_unstructured(std::string_view value) {
    std::string out;
    bool after_word = false;
    std::string pending_space;
    while (!value.empty()) {
        if (value.front() == ' ' || value.front() == '\t') {
            pending_space += value.front();
            value.remove_prefix(1);
            continue;
        }
        if (value.starts_with("=?UTF-8?B?")) {
            std::size_t end = value.find("?=", 10);
            REQUIRE(end != std::string_view::npos);
            if (!after_word)
                out += pending_space;
            out += decode_base64(value.substr(10, end - 10));
            value.remove_prefix(end + 2);
            after_word = true;
        } else {
            out += pending_space;
            out += value.front();
            value.remove_prefix(1);
            after_word = false;
        }
        pending_space.clear();
    }
    return out + pending_space;
}

// A result mail taken apart: its fields, parts, and both outputs as the
// reader gets them back, from an attachment or from the summary.
struct ReadMail {
    Entity message;
    std::vector<Entity> parts;
    std::string summary;
    std::map<std::string, std::string> output;
    std::map<std::string, std::string> attachment_type;
};

std::optional<std::string> inline_output(std::string_view summary,
                                         std::string_view name) {
    std::string heading = "\r\n---- " + std::string(name) + ", ";
    std::size_t at = summary.find(heading);
    if (at == std::string_view::npos)
        return std::nullopt;
    at += heading.size();
    std::size_t end = summary.find(" bytes ----\r\n", at);
    REQUIRE(end != std::string_view::npos);
    std::size_t size = std::stoul(std::string(summary.substr(at, end - at)));
    std::size_t start = end + 13;
    REQUIRE(start + size <= summary.size());
    return std::string(summary.substr(start, size));
}

ReadMail read_mail(const std::string& message) {
    ReadMail mail;
    mail.message = read_entity(message);
    std::string type = mail.message.field("Content-Type");
    REQUIRE(type.starts_with("multipart/mixed;"));
    std::string boundary = parameter(type, "boundary");
    REQUIRE(!boundary.empty());
    mail.parts = read_multipart("\r\n" + mail.message.body, boundary);
    REQUIRE(!mail.parts.empty());

    const Entity& summary = mail.parts.front();
    CHECK(summary.field("Content-Type") == "text/plain; charset=UTF-8");
    CHECK(summary.field("Content-Disposition") == "inline");
    mail.summary = decode_body(summary);

    for (std::size_t i = 1; i < mail.parts.size(); ++i) {
        const Entity& part = mail.parts[i];
        std::string file =
            parameter(part.field("Content-Disposition"), "filename");
        REQUIRE((file == "stdout.txt" || file == "stderr.txt"));
        CHECK(part.field("Content-Disposition").starts_with("attachment;"));
        CHECK(part.field("Content-Transfer-Encoding") == "base64");
        std::string name = file.substr(0, 6);
        REQUIRE(mail.output.count(name) == 0);
        mail.output[name] = decode_body(part);
        mail.attachment_type[name] = part.field("Content-Type");
    }
    for (std::string name : {"stdout", "stderr"}) {
        if (mail.output.count(name))
            continue;
        auto shown = inline_output(mail.summary, name);
        if (shown)
            mail.output[name] = *shown;
        else
            mail.output[name] = "";
    }
    return mail;
}

// Every line ends in CRLF, no CR or LF stands alone, every octet is
// 7-bit and no line is longer than `limit` octets.
void check_lines(std::string_view message, std::size_t limit) {
    CHECK(message.ends_with("\r\n"));
    std::size_t line_bytes = 0;
    std::size_t longest = 0;
    std::size_t bare_cr = 0, bare_lf = 0, eight_bit = 0, nul = 0;
    for (std::size_t i = 0; i < message.size(); ++i) {
        char c = message[i];
        eight_bit += static_cast<unsigned char>(c) >= 0x80;
        nul += c == '\0';
        bare_lf += c == '\n';
        if (c == '\r' && i + 1 < message.size() && message[i + 1] == '\n') {
            longest = std::max(longest, line_bytes);
            line_bytes = 0;
            ++i;
            continue;
        }
        bare_cr += c == '\r';
        ++line_bytes;
    }
    CHECK(bare_cr == 0);
    CHECK(bare_lf == 0);
    CHECK(eight_bit == 0);
    CHECK(nul == 0);
    CHECK(longest <= limit);
}

const std::vector<std::string> expected_fields = {"From",
                                                  "To",
                                                  "Date",
                                                  "Message-ID",
                                                  "Subject",
                                                  "MIME-Version",
                                                  "Content-Type",
                                                  "Auto-Submitted",
                                                  "X-Cloudproto-Job"};

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

std::string every_byte_value(std::size_t size) {
    std::string out(size, '\0');
    std::uint32_t state = 12345;
    for (char& c : out) {
        state = state * 1103515245 + 12345;
        c = static_cast<char>(state >> 16);
    }
    return out;
}

std::string text_lines(std::size_t size) {
    std::string out;
    for (int n = 0; out.size() < size; ++n)
        out += "line " + std::to_string(n) + " of the job's output\n";
    out.resize(size);
    return out;
}

// --- Cross-check with Python's email package ----------------------------

const char* const system_python = "/usr/bin/python3";

// Parses message.eml in argv[1] with policy.default and writes what a
// real MIME parser decoded: both outputs, the subject and any defects.
const char* const python_reader = R"(
import email, email.policy, pathlib, re, sys
d = pathlib.Path(sys.argv[1])
m = email.message_from_bytes((d / "message.eml").read_bytes(),
                             policy=email.policy.default)
defects = list(m.defects)
summary = b""
for part in m.iter_parts():
    defects += part.defects
    name = part.get_filename()
    data = part.get_payload(decode=True)
    if name:
        (d / (name[:-4] + ".py.bin")).write_bytes(data)
    else:
        summary = data
for name in ("stdout", "stderr"):
    if (d / (name + ".py.bin")).exists():
        continue
    heading = b"\r?\n---- " + name.encode() + b", ([0-9]+) bytes ----\r?\n"
    head = re.search(heading, summary)
    data = summary[head.end():head.end() + int(head.group(1))] if head else b""
    (d / (name + ".py.bin")).write_bytes(data)
(d / "subject.py.txt").write_bytes(str(m["subject"]).encode())
(d / "to.py.txt").write_bytes(str(m["to"]).encode())
(d / "type.py.txt").write_bytes(m.get_content_type().encode())
(d / "defects.py.txt").write_bytes(
    " ".join(type(x).__name__ for x in defects).encode())
)";

struct PythonView {
    std::string out, err, subject, to, type, defects;
};

std::string read_whole(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return {std::istreambuf_iterator<char>(in), {}};
}

// nullopt when this machine has no Debian python3 to ask.
std::optional<PythonView> read_with_python(const std::string& message) {
    if (!std::filesystem::exists(system_python)) {
        MESSAGE("no " << system_python << ": cross-check with Python skipped");
        return std::nullopt;
    }
    static int run = 0;
    auto dir = std::filesystem::temp_directory_path() /
               ("cloudproto-result-mail-" + std::to_string(::getpid()) + "-" +
                std::to_string(run++));
    std::filesystem::create_directories(dir);
    {
        std::ofstream file(dir / "message.eml", std::ios::binary);
        file << message;
    }

    // The script holds no single quote, so the shell passes it whole
    std::string command = std::string(system_python) + " -c '" + python_reader +
                          "' " + dir.string();
    int status = std::system(command.c_str());
    REQUIRE(status == 0);

    PythonView view{
        read_whole(dir / "stdout.py.bin"),  read_whole(dir / "stderr.py.bin"),
        read_whole(dir / "subject.py.txt"), read_whole(dir / "to.py.txt"),
        read_whole(dir / "type.py.txt"),    read_whole(dir / "defects.py.txt")};
    std::filesystem::remove_all(dir);
    return view;
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
