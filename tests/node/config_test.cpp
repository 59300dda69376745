#include "node/config.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace cloudnode;

namespace {

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
    REQUIRE(c.runtimes.size() == 2);
    CHECK(c.find_runtime("bash"));
    CHECK(c.find_runtime("python")->command[0] == "/usr/bin/python3");
    CHECK_FALSE(c.find_runtime("perl"));
}

TEST_CASE("the example configuration is valid") {
    auto c = load_config(CLOUDPROTO_SOURCE_DIR "/examples/one-node.toml");
    CHECK(c.name == "alpha");
    CHECK(c.listen_tls.size() == 1);
    CHECK(c.listen_plain.size() == 1);
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
        {"[node]\nname = \"a\"\nspool_dir = \"s\"\n", "listen: names no address"},
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
        {minimal + "[runtimes.Perl]\nextension = \"pl\"\n"
                   "command = [\"/usr/bin/perl\", \"{script}\"]\n",
         "runtimes.Perl: is not a valid runtime name"},
        {minimal + "[runtimes.perl]\nextension = \"pl\"\n"
                   "command = [\"perl\", \"{script}\"]\n",
         "runtimes.perl.command: must start with an absolute path"},
        {minimal + "[runtimes.perl]\nextension = \"pl\"\n"
                   "command = [\"/usr/bin/perl\"]\n",
         "runtimes.perl.command: must contain \"{script}\""},
        {minimal + "[runtimes.perl]\ncommand = [\"/usr/bin/perl\", "
                   "\"{script}\"]\n",
         "runtimes.perl.extension: is required"},
        {minimal + "[runtimes.perl]\nextension = \"../x\"\n"
                   "command = [\"/usr/bin/perl\", \"{script}\"]\n",
         "runtimes.perl.extension: must be 1 to 16 lower-case"},
        {minimal + "[runtimes.perl]\nextension = \"pl\"\nflavour = 1\n"
                   "command = [\"/usr/bin/perl\", \"{script}\"]\n",
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
command = ["/usr/bin/python3.11", "{script}"]
)",
                          "/etc/cloud/node.toml");
    REQUIRE(c.find_runtime("python3.11"));
    CHECK(c.find_runtime("python3.11")->extension == "py");
    CHECK(error_of(minimal + R"([runtimes."python3.11"]
command = ["/usr/bin/python3.11", "{script}"]
)").find("runtimes.\"python3.11\".extension: is required") !=
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
