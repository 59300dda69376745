#include "node/config.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

using namespace cloudnode;

namespace {

namespace fs = std::filesystem;

// An absolute program path on the platform under test.
#if defined(_WIN32)
const std::string perl = "C:/Perl/bin/perl.exe";
const std::string python311 = "C:/Python311/python.exe";
constexpr bool on_windows = true;
#else
const std::string perl = "/usr/bin/perl";
const std::string python311 = "/usr/bin/python3.11";
constexpr bool on_windows = false;
#endif

const std::string minimal = R"(
[node]
name = "alpha"
spool_dir = "spool"
[listen]
plain = ["127.0.0.1:0"]
)";

std::string error_of(const std::string& text) {
    try {
        parse_config(text, "/etc/cloud/node.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("a minimal configuration gets the defaults") {
    auto c = parse_config(minimal, "/etc/cloud/node.toml");
    CHECK(c.name == "alpha");
    CHECK(c.spool_dir == "/etc/cloud/spool");
    CHECK(c.work_dir == "/etc/cloud/spool/work");
    CHECK(c.outbox_dir == "/etc/cloud/spool/outbox");
    CHECK(c.slots == 2);
    CHECK(c.max_job_bytes == 1024 * 1024);
    CHECK(c.default_timeout.count() == 60);
    CHECK(c.mail_from == "cloud-node@alpha");
    CHECK_FALSE(c.find_runtime("perl"));
}

TEST_CASE("without [runtimes] a POSIX node offers bash and python" *
          doctest::skip(on_windows)) {
    auto c = parse_config(minimal, "/etc/cloud/node.toml");
    REQUIRE(c.runtimes.size() == 2);
    CHECK(c.find_runtime("bash")->command[0] == "/bin/bash");
    CHECK(c.find_runtime("python")->command[0] == "/usr/bin/python3");
    CHECK_FALSE(c.find_runtime("batch"));
}

TEST_CASE("without [runtimes] a Windows node offers batch through cmd.exe" *
          doctest::skip(!on_windows)) {
    auto c = parse_config(minimal, "C:/cloud/node.toml");
    const cloudnode::Runtime* batch = c.find_runtime("batch");
    REQUIRE(batch);
    CHECK(batch->extension == "bat");
    REQUIRE(batch->command.size() == 4);
    CHECK(fs::path(batch->command[0]).filename() == "cmd.exe");
    CHECK(fs::path(batch->command[0]).is_absolute());
    CHECK(batch->command[1] == "/d");
    CHECK(batch->command[2] == "/c");
    CHECK(batch->command[3] == "{script}");
    CHECK_FALSE(c.find_runtime("bash"));
    // python only where an interpreter is found (never under Wine in CI).
    if (const auto* python = c.find_runtime("python"))
        CHECK(fs::path(python->command[0]).is_absolute());
}

TEST_CASE("the example configuration is valid" * doctest::skip(on_windows)) {
    auto c = load_config(CLOUDPROTO_SOURCE_DIR "/examples/one-node.toml");
    CHECK(c.name == "alpha");
    CHECK(c.listen_tls.size() == 1);
    CHECK(c.listen_plain.size() == 1);
}

TEST_CASE("the federation's Windows example configuration is valid" *
          doctest::skip(!on_windows)) {
    auto c = load_config(CLOUDPROTO_SOURCE_DIR
                         "/examples/federation/provider-a-windows.toml");
    CHECK(c.name == "provider-a-windows");
    CHECK(c.find_runtime("batch"));
    CHECK(c.federation.peers.size() == 3);
}

TEST_CASE("a bad configuration names the file, the key and the fault") {
    struct Row {
        std::string text;
        std::string says;
    } rows[] = {
        {"[node\nname=1", "node.toml:1:"},
        {minimal + "[limits]\nslots = 0\n", "limits.slots: must be an integer"},
        {minimal + "[limits]\nslots = \"4\"\n", "limits.slots"},
        {minimal + "[limits]\nmax_timeout_seconds = 10\n"
                   "default_timeout_seconds = 20\n",
         "limits.default_timeout_seconds"},
        {"[node]\nspool_dir = \"s\"\n[listen]\nplain = [\"127.0.0.1:1\"]\n",
         "node.name: is required"},
        {"[node]\nname = \"a b\"\nspool_dir = \"s\"\n", "node.name"},
        {"[node]\nname = \"a\"\nspool_dir = \"s\"\n",
         "listen: names no address"},
        {"[node]\nname = \"a\"\nspool_dir = \"s\"\n[listen]\n"
         "plain = [\"0.0.0.0:25684\"]\n",
         "listen.plain: 0.0.0.0 is not a loopback address"},
        {"[node]\nname = \"a\"\nspool_dir = \"s\"\n[listen]\n"
         "tls = [\"127.0.0.1:99999\"]\n",
         "has no valid port"},
        {"[node]\nname = \"a\"\nspool_dir = \"s\"\n[listen]\n"
         "tls = [\"127.0.0.1:25683\"]\n",
         "tls.certificate: is required"},
        {minimal + "[mail]\nfrom = \"not an address\"\n", "mail.from"},
        {minimal + "[node]\nlog_level = \"loud\"\n", "node"},
        {minimal +
             "[runtimes.Perl]\nextension = \"pl\"\n"
             "command = [\"" +
             perl + "\", \"{script}\"]\n",
         "runtimes.Perl: is not a valid runtime name"},
        {minimal + "[runtimes.perl]\nextension = \"pl\"\n"
                   "command = [\"perl\", \"{script}\"]\n",
         "runtimes.perl.command: must start with an absolute path"},
        {minimal +
             "[runtimes.perl]\nextension = \"pl\"\n"
             "command = [\"" +
             perl + "\"]\n",
         "runtimes.perl.command: must contain \"{script}\""},
        {minimal + "[runtimes.perl]\ncommand = [\"" + perl +
             "\", "
             "\"{script}\"]\n",
         "runtimes.perl.extension: is required"},
        {minimal +
             "[runtimes.perl]\nextension = \"../x\"\n"
             "command = [\"" +
             perl + "\", \"{script}\"]\n",
         "runtimes.perl.extension: must be 1 to 16 lower-case"},
        {minimal +
             "[runtimes.perl]\nextension = \"pl\"\nflavour = 1\n"
             "command = [\"" +
             perl + "\", \"{script}\"]\n",
         "runtimes.perl.flavour: is not a known key"},
        {minimal + "[limits]\nslotz = 3\n", "limits.slotz: is not a known key"},
        {minimal + "[mailer]\n", "mailer: is not a known key"},
    };
    for (const auto& row : rows) {
        CAPTURE(row.text);
        auto error = error_of(row.text);
        CHECK(error.find("/etc/cloud/node.toml") == 0);
        CHECK_MESSAGE(error.find(row.says) != std::string::npos, error);
    }
}

TEST_CASE("a runtime name may hold a dot") {
    auto c = parse_config(minimal + R"([runtimes."python3.11"]
extension = "py"
command = [")" + python311 + R"(", "{script}"]
)",
                          "/etc/cloud/node.toml");
    REQUIRE(c.find_runtime("python3.11"));
    CHECK(c.find_runtime("python3.11")->extension == "py");
    CHECK(error_of(minimal + R"([runtimes."python3.11"]
command = [")" + python311 +
                   R"(", "{script}"]
)")
              .find("runtimes.\"python3.11\".extension: is required") !=
          std::string::npos);
}

TEST_CASE("a log level that does not exist is refused") {
    auto text = R"(
[node]
name = "alpha"
spool_dir = "spool"
log_level = "loud"
[listen]
plain = ["127.0.0.1:0"]
)";
    CHECK(error_of(text).find("node.log_level") != std::string::npos);
}

// [federation] and [[peers]] (proto-spec "Peers and trust").
namespace {

const std::string with_tls = R"(
[node]
name = "alpha"
spool_dir = "spool"
[listen]
tls = ["127.0.0.1:0"]
[tls]
certificate = "alpha.crt"
private_key = "alpha.key"
)";

const std::string authority = "[federation]\nauthority = \"ca.pem\"\n";

// 64 hex digits, as the node keeps a fingerprint.
const std::string pin_hex =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// The same, as openssl x509 -fingerprint -sha256 prints it.
std::string openssl_form(const std::string& hex) {
    std::string out = "sha256:";
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        if (i > 0)
            out += ':';
        for (char c : hex.substr(i, 2))
            out += c >= 'a' && c <= 'f' ? static_cast<char>(c - 'a' + 'A') : c;
    }
    return out;
}

std::string peer(const std::string& name, const std::string& address,
                 const std::string& fingerprint = "") {
    std::string s =
        "[[peers]]\nname = \"" + name + "\"\naddress = \"" + address + "\"\n";
    if (!fingerprint.empty())
        s += "fingerprint = \"" + fingerprint + "\"\n";
    return s;
}

} // namespace

TEST_CASE("a federation of two peers is read with all its settings") {
    auto c = parse_config(
        with_tls + R"(
[federation]
authority = "ca/federation.pem"
hop_limit = 5
capacity_interval_seconds = 3
relay_timeout_seconds = 40
)" + peer("beta.example.org", "192.0.2.2:25683") +
            peer("gamma", "[2001:db8::3]:443", openssl_form(pin_hex)),
        "/etc/cloud/node.toml");
    const auto& f = c.federation;
    CHECK(f.authority == "/etc/cloud/ca/federation.pem");
    CHECK(f.hop_limit == 5);
    CHECK(f.capacity_interval.count() == 3);
    CHECK(f.relay_timeout.count() == 40);
    REQUIRE(f.peers.size() == 2);
    CHECK(f.peers[0].name == "beta.example.org");
    CHECK(f.peers[0].host == "192.0.2.2");
    CHECK(f.peers[0].port == "25683");
    CHECK(f.peers[0].fingerprint == "");
    CHECK(f.peers[1].name == "gamma");
    CHECK(f.peers[1].host == "2001:db8::3");
    CHECK(f.peers[1].port == "443");
    CHECK(f.peers[1].fingerprint == pin_hex);
    CHECK(f.find_peer("gamma") == &f.peers[1]);
    CHECK(f.find_peer("delta") == nullptr);
}

TEST_CASE("without [federation] a node has no peers and the defaults") {
    auto c = parse_config(minimal, "/etc/cloud/node.toml");
    CHECK(c.federation.peers.empty());
    CHECK(c.federation.authority.empty());
    CHECK(c.federation.hop_limit == 8);
    CHECK(c.federation.capacity_interval.count() == 2);
    CHECK(c.federation.relay_timeout.count() == 30);

    // An authority and no peer: a TLS listener is not needed.
    auto a = parse_config(minimal + authority, "/etc/cloud/node.toml");
    CHECK(a.federation.authority == "/etc/cloud/ca.pem");
}

TEST_CASE("a peer's address is a host name or an IP address, and a port") {
    struct Row {
        const char* address;
        const char* host;
        const char* port;
    } rows[] = {
        {"192.0.2.2:25683", "192.0.2.2", "25683"},
        {"beta.example.org:1", "beta.example.org", "1"},
        {"[::1]:65535", "::1", "65535"},
    };
    for (const auto& row : rows) {
        CAPTURE(row.address);
        auto c = parse_config(with_tls + authority + peer("beta", row.address),
                              "/etc/cloud/node.toml");
        REQUIRE(c.federation.peers.size() == 1);
        CHECK(c.federation.peers[0].host == row.host);
        CHECK(c.federation.peers[0].port == row.port);
    }
}

TEST_CASE("a fingerprint is read in openssl's form or as hex, any case") {
    std::string upper = pin_hex;
    for (auto& ch : upper)
        ch = ch >= 'a' && ch <= 'f' ? static_cast<char>(ch - 'a' + 'A') : ch;
    std::string lower_colons = openssl_form(pin_hex).substr(7);
    for (auto& ch : lower_colons)
        ch = ch >= 'A' && ch <= 'F' ? static_cast<char>(ch - 'A' + 'a') : ch;

    const std::string forms[] = {
        openssl_form(pin_hex), // sha256:01:23:...:EF
        "SHA256:" + openssl_form(pin_hex).substr(7),
        "sha256:" + pin_hex,
        pin_hex,      // plain lower-case hex
        upper,        // plain upper-case hex
        lower_colons, // 01:23:...:ef
    };
    for (const auto& form : forms) {
        CAPTURE(form);
        // No authority: every peer is pinned.
        auto c = parse_config(with_tls + peer("beta", "192.0.2.2:1", form),
                              "/etc/cloud/node.toml");
        REQUIRE(c.federation.peers.size() == 1);
        CHECK(c.federation.peers[0].fingerprint == pin_hex);
    }
}

TEST_CASE("a bad federation names the key at fault") {
    const std::string fed = with_tls + authority;
    const std::string beta = peer("beta", "192.0.2.2:25683");
    struct Row {
        std::string text;
        std::string says;
    } rows[] = {
        // [federation]
        {with_tls + "[federation]\nauthority = \"ca.pem\"\nhops = 3\n",
         "federation.hops: is not a known key"},
        {fed + "hop_limit = 0\n", "federation.hop_limit: must be an integer "
                                  "from 1 to"},
        {fed + "hop_limit = 65\n", "federation.hop_limit: must be an integer"},
        {fed + "hop_limit = \"8\"\n",
         "federation.hop_limit: must be an integer"},
        {fed + "capacity_interval_seconds = 0\n",
         "federation.capacity_interval_seconds: must be an integer"},
        {fed + "relay_timeout_seconds = 3601\n",
         "federation.relay_timeout_seconds: must be an integer"},
        {with_tls + "[federation]\nauthority = \"\"\n",
         "federation.authority: must be a non-empty string"},

        // A [[peers]] entry
        {fed + beta + "colour = \"red\"\n",
         "peers[0].colour: is not a known key"},
        {fed + beta + peer("gamma", "192.0.2.3:1") + "port = 1\n",
         "peers[1].port: is not a known key"},
        {fed + "[[peers]]\naddress = \"192.0.2.2:1\"\n",
         "peers[0].name: is required"},
        {fed + "[[peers]]\nname = \"beta\"\n", "peers[0].address: is required"},
        {fed + peer("be_ta", "192.0.2.2:1"),
         "peers[0].name: must be 1 to 64 of letters"},
        {fed + peer("be,ta", "192.0.2.2:1"), "peers[0].name: must be 1 to 64"},
        {fed + peer("be ta", "192.0.2.2:1"), "peers[0].name: must be 1 to 64"},
        {fed + peer(std::string(65, 'b'), "192.0.2.2:1"),
         "peers[0].name: must be 1 to 64"},
        {fed + peer("alpha", "192.0.2.2:1"),
         "peers[0].name: is this node's own name"},
        {fed + beta + peer("alpha", "192.0.2.2:1"),
         "peers[1].name: is this node's own name"},
        {fed + beta + peer("beta", "192.0.2.9:2"),
         "peers[1].name: beta is listed twice"},
        {fed + peer("beta", "192.0.2.2"),
         "peers[0].address: '192.0.2.2' must be host:port"},
        {fed + peer("beta", ":25683"), "peers[0].address"},
        {fed + peer("beta", "192.0.2.2:"), "peers[0].address"},
        {fed + peer("beta", "192.0.2.2:http"), "peers[0].address"},
        {fed + peer("beta", "192.0.2.2:-1"), "peers[0].address"},
        {fed + peer("beta", "192.0.2.2:025683"), "peers[0].address"},
        {fed + peer("beta", "192.0.2.2:123456"), "peers[0].address"},
        {fed + peer("beta", "192.0.2.2:1 "), "peers[0].address"},
        {fed + peer("beta", "192.0.2.2:1", "sha256:12:34"),
         "peers[0].fingerprint: must be the certificate's SHA-256"},
        {fed + peer("beta", "192.0.2.2:1", pin_hex.substr(1)),
         "peers[0].fingerprint"},
        {fed + peer("beta", "192.0.2.2:1", pin_hex + "0"),
         "peers[0].fingerprint"},
        {fed + peer("beta", "192.0.2.2:1", "g" + pin_hex.substr(1)),
         "peers[0].fingerprint"},
        {fed + peer("beta", "192.0.2.2:1", "sha1:" + pin_hex),
         "peers[0].fingerprint"},
        {fed + peer("beta", "192.0.2.2:1", "sha256:"), "peers[0].fingerprint"},
        {fed + peer("beta", "192.0.2.2:1", " " + pin_hex),
         "peers[0].fingerprint"},
        {fed + beta + "fingerprint = 12\n", "peers[0].fingerprint"},

        // Trust and listeners
        {with_tls + beta,
         "peers[0]: needs a fingerprint when [federation] names no "
         "authority"},
        {with_tls + peer("beta", "192.0.2.2:1", pin_hex) +
             peer("gamma", "192.0.2.3:1"),
         "peers[1]: needs a fingerprint"},
        {minimal + authority + beta,
         "peers: need a TLS listener and certificate"},

        // [[peers]] must be an array of tables
        // (root keys come before the first table)
        {"peers = \"beta\"\n" + fed, "peers: must be an array of tables"},
        {"peers = [\"beta\"]\n" + fed, "peers: must be an array of tables"},
        {"peers = 3\n" + fed, "peers: must be an array of tables"},
        {fed + "[peers]\nname = \"beta\"\naddress = \"192.0.2.2:1\"\n",
         "peers: must be an array of tables"},

        // node.name: no ',' (it separates TRACE's names), no '_'
        {"[node]\nname = \"a,b\"\nspool_dir = \"s\"\n[listen]\n"
         "plain = [\"127.0.0.1:0\"]\n",
         "node.name: must be 1 to 64 of letters, digits, '.' and '-'"},
        {"[node]\nname = \"a_b\"\nspool_dir = \"s\"\n[listen]\n"
         "plain = [\"127.0.0.1:0\"]\n",
         "node.name: must be 1 to 64"},
        {"[node]\nname = \"" + std::string(65, 'a') +
             "\"\nspool_dir = \"s\"\n[listen]\nplain = [\"127.0.0.1:0\"]\n",
         "node.name: must be 1 to 64"},
    };
    for (const auto& row : rows) {
        CAPTURE(row.text);
        auto error = error_of(row.text);
        CHECK(error.find("/etc/cloud/node.toml: ") == 0);
        CHECK_MESSAGE(error.find(row.says) != std::string::npos, error);
    }
}

// A peer's port is 1 to 65535.
TEST_CASE("a peer's port past 65535 is refused") {
    for (std::string address : {"192.0.2.2:65536", "192.0.2.2:99999"}) {
        CAPTURE(address);
        auto error = error_of(with_tls + authority + peer("beta", address));
        CHECK_MESSAGE(error.find("peers[0].address") != std::string::npos,
                      error);
    }
}

// proto-spec 7.2: node names are compared without regard to case, and a
// node name is unique in the federation.
TEST_CASE("peer names that differ only in case are one name") {
    const std::string fed = with_tls + authority;
    auto own = error_of(fed + peer("ALPHA", "192.0.2.2:1"));
    CHECK_MESSAGE(own.find("peers[0].name: is this node's own name") !=
                      std::string::npos,
                  own);
    auto twice = error_of(fed + peer("beta", "192.0.2.2:1") +
                          peer("Beta", "192.0.2.3:1"));
    CHECK_MESSAGE(twice.find("peers[1].name") != std::string::npos, twice);
}

// A [federation] that is not a table is not silently ignored.
TEST_CASE("federation that is not a table is refused") {
    auto error = error_of("federation = 3\n" + minimal);
    CHECK_MESSAGE(error.find("federation") != std::string::npos, error);
}

TEST_CASE("job maxima and containment have defaults and are read") {
    auto d = parse_config(minimal, "/etc/cloud/node.toml");
    CHECK(d.max_job.memory_bytes == 1024LL * 1024 * 1024);
    CHECK(d.max_job.processes == 128);
    CHECK(d.containment.require_level == 0);
    CHECK(d.containment.disabled.empty());

    auto c = parse_config(minimal + R"(
[limits]
max_memory_bytes = 67108864
max_cpu_seconds = 10
max_processes = 8
max_disk_bytes = 1048576
max_open_files = 64
[containment]
require_level = 3
disable = ["cgroup", "seccomp"]
first_uid = 200000
)",
                          "/etc/cloud/node.toml");
    CHECK(c.max_job.memory_bytes == 64 * 1024 * 1024);
    CHECK(c.max_job.cpu_seconds == 10);
    CHECK(c.max_job.processes == 8);
    CHECK(c.max_job.disk_bytes == 1024 * 1024);
    CHECK(c.max_job.open_files == 64);
    CHECK(c.containment.require_level == 3);
    CHECK(c.containment.disabled ==
          std::vector<platform::Layer>{platform::Layer::cgroup,
                                       platform::Layer::seccomp});
    CHECK(c.containment.first_uid == 200000);
}

TEST_CASE("a bad containment table names the key at fault") {
    struct Row {
        std::string text;
        std::string says;
    } rows[] = {
        {"[containment]\nrequire_level = 5\n",
         "containment.require_level: must be an integer from 0 to 4"},
        {"[containment]\ndisable = [\"limits\"]\n",
         "containment.disable: 'limits' is not a layer"},
        {"[containment]\ndisable = [\"selinux\"]\n",
         "containment.disable: 'selinux' is not a layer"},
        {"[containment]\ndisable = \"uid\"\n",
         "containment.disable: must be a list of strings"},
        {"[containment]\nfirst_uid = 0\n", "containment.first_uid"},
        {"[containment]\nfirst_uid = 4294967295\n", "containment.first_uid"},
        {"[containment]\nlevel = 2\n", "containment.level: is not a known"},
        {"[limits]\nmax_processes = 0\n", "limits.max_processes"},
        {"[limits]\nmax_memory_bytes = 1024\n", "limits.max_memory_bytes"},
    };
    for (const auto& row : rows) {
        CAPTURE(row.text);
        CHECK(error_of(minimal + row.text).find(row.says) != std::string::npos);
    }
}

// [mail] with a server (README "Result mail").
namespace {

const std::string with_mail_server =
    minimal + "[mail]\nserver = \"127.0.0.1:2525\"\nsecurity = \"none\"\n";

} // namespace

TEST_CASE("a mail server's defaults follow RFC 5321's timeouts") {
    auto c = parse_config(with_mail_server, "/etc/cloud/node.toml");
    REQUIRE(c.mail_server);
    CHECK(c.mail_server->timeout.count() == 300);
    CHECK(c.mail_server->data_timeout.count() == 600);
    CHECK(c.mail_server->lifetime.count() == 5 * 24 * 3600);
    // The mailer chooses: the machine's domain or an address literal
    CHECK(c.mail_server->helo_name.empty());
}

TEST_CASE("a mail lifetime in hours or in seconds, not both") {
    auto hours = parse_config(with_mail_server + "lifetime_hours = 2\n",
                              "/etc/cloud/node.toml");
    CHECK(hours.mail_server->lifetime.count() == 2 * 3600);
    auto seconds = parse_config(with_mail_server + "lifetime_seconds = 3\n",
                                "/etc/cloud/node.toml");
    CHECK(seconds.mail_server->lifetime.count() == 3);
    CHECK(error_of(with_mail_server +
                   "lifetime_hours = 2\nlifetime_seconds = 3\n")
              .find("mail.lifetime_seconds: cannot go with lifetime_hours") !=
          std::string::npos);
    CHECK(error_of(with_mail_server + "lifetime_seconds = 0\n")
              .find("mail.lifetime_seconds: must be an integer") !=
          std::string::npos);
}

TEST_CASE("the wait after the message is its own setting") {
    auto c = parse_config(with_mail_server + "timeout_seconds = 2\n"
                                             "data_timeout_seconds = 7\n",
                          "/etc/cloud/node.toml");
    CHECK(c.mail_server->timeout.count() == 2);
    CHECK(c.mail_server->data_timeout.count() == 7);
}

TEST_CASE("helo_name is a domain name or an address literal") {
    struct Row {
        std::string name;
        bool valid;
    } rows[] = {
        {"mail.provider-a.example", true},
        {"provider-a", true},
        {"[127.0.0.1]", true},
        {"[IPv6:::1]", true},
        {"[IPv6:2001:db8::1]", true},
        {"[::1]", false},
        {"[IPv6:127.0.0.1]", false},
        {"[999.0.0.1]", false},
        {"a..example", false},
        {".example", false},
        {"-a.example", false},
        {"a b.example", false},
        {"a_b.example", false},
        {"a.example\r\nMAIL", false},
        {std::string(64, 'a') + ".example", false},
    };
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(is_helo_name(row.name) == row.valid);
    }
    CHECK(error_of(with_mail_server + "helo_name = \"a b\"\n")
              .find("mail.helo_name: must be a domain name") !=
          std::string::npos);
}

TEST_CASE("credentials go without TLS only when allowed, and to loopback") {
    auto secret_file = std::string(CLOUDPROTO_SOURCE_DIR) + "/LICENSE";
    auto auth =
        "username = \"node\"\npassword_file = \"" + secret_file + "\"\n";
    CHECK(error_of(with_mail_server + auth)
              .find("mail.username: would be sent without TLS") !=
          std::string::npos);
    auto c =
        parse_config(with_mail_server + auth + "allow_plaintext_auth = true\n",
                     "/etc/cloud/node.toml");
    CHECK(c.mail_server->allow_plaintext_auth);
    CHECK(error_of(minimal + "[mail]\nserver = \"smtp.example.org:587\"\n" +
                   auth + "allow_plaintext_auth = true\n")
              .find("mail.allow_plaintext_auth: credentials go without TLS "
                    "only to a loopback server") != std::string::npos);
}
