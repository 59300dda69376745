// A small MIME reader and a cross-check with Python's email package, for
// the tests of the result mail.
#pragma once

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace test_support {

// --- A small MIME reader ---------------------------------------------------
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

inline Entity read_entity(std::string_view text) {
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
inline std::string parameter(std::string_view field, std::string_view name) {
    std::string key = std::string(name) + "=\"";
    std::size_t start = field.find(key);
    if (start == std::string_view::npos)
        return {};
    start += key.size();
    return std::string(field.substr(start, field.find('"', start) - start));
}

inline std::vector<Entity> read_multipart(std::string_view body,
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

inline int base64_value(char c) {
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

inline std::string decode_base64(std::string_view text) {
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

inline int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

inline std::string decode_quoted_printable(std::string_view text) {
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

inline std::string decode_body(const Entity& part) {
    std::string encoding = part.field("Content-Transfer-Encoding");
    if (encoding == "base64")
        return decode_base64(part.body);
    REQUIRE(encoding == "quoted-printable");
    return decode_quoted_printable(part.body);
}

// RFC 2047 for the one form we write, =?UTF-8?B?...?=; white space
// between two encoded-words is dropped, as section 6.2 asks.
inline std::string decode_unstructured(std::string_view value) {
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

inline std::optional<std::string> inline_output(std::string_view summary,
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

inline ReadMail read_mail(const std::string& message) {
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

// --- Cross-check with Python's email package ----------------------------

inline const char* const system_python = "/usr/bin/python3";

// Parses message.eml in argv[1] with policy.default and writes what a
// real MIME parser decoded: both outputs, the subject and any defects.
inline const char* const python_reader = R"(
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

inline std::string read_whole(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return {std::istreambuf_iterator<char>(in), {}};
}

// nullopt when this machine has no Debian python3 to ask.
inline std::optional<PythonView> read_with_python(const std::string& message) {
#if defined(_WIN32)
    // Under Wine the Linux python3 is a file too, but no program to run.
    MESSAGE("a Windows build: cross-check with Python skipped");
    return std::nullopt;
#endif
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

// Every line ends in CRLF, no CR or LF stands alone, every octet is
// 7-bit and no line is longer than `limit` octets.
inline void check_lines(std::string_view message, std::size_t limit) {
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

inline std::string every_byte_value(std::size_t size) {
    std::string out(size, '\0');
    std::uint32_t state = 12345;
    for (char& c : out) {
        state = state * 1103515245 + 12345;
        c = static_cast<char>(state >> 16);
    }
    return out;
}

} // namespace test_support
