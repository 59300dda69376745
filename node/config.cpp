#include "node/config.hpp"
#include "node/platform/runtimes.hpp"

#include "cloudproto/descriptor.hpp"
#include "cloudproto/federation.hpp"
#include "cloudproto/log.hpp"
#include "cloudproto/protocol.hpp"
#include "cloudproto/text.hpp"
#include "cloudproto/tls.hpp"

#include <asio/ip/address.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <initializer_list>
#include <sstream>

namespace cloudnode {

namespace {

// Reads one table of the file, and names keys in errors as "table.key"
// (with `prefix` in front for a table below the root).
class Reader {
public:
    Reader(const toml::table& root, const std::filesystem::path& file,
           std::string prefix = {})
        : root_(root), file_(file), prefix_(std::move(prefix)) {}

    [[noreturn]] void fail(std::string_view key, std::string_view what) const {
        throw ConfigError(
            fmt::format("{}: {}{}: {}", file_.string(), prefix_, key, what));
    }

    // A typo in a key would otherwise be ignored in silence.
    void only(std::string_view table,
              std::initializer_list<std::string_view> known) const {
        const toml::node* n =
            table.empty() ? &root_ : root_.at_path(table).node();
        if (!n)
            return;
        const toml::table* t = n->as_table();
        if (!t)
            fail(table, "must be a table");
        for (auto& [key, value] : *t) {
            if (std::find(known.begin(), known.end(), key.str()) == known.end())
                fail(table.empty() ? std::string(key.str())
                                   : fmt::format("{}.{}", table, key.str()),
                     "is not a known key");
        }
    }

    const toml::node* find(std::string_view key) const {
        return root_.at_path(key).node();
    }

    std::string string(std::string_view key, std::string fallback,
                       bool required = false) const {
        auto* n = find(key);
        if (!n) {
            if (required)
                fail(key, "is required");
            return fallback;
        }
        auto v = n->value<std::string>();
        if (!n->is_string() || !v || v->empty())
            fail(key, "must be a non-empty string");
        return *v;
    }

    std::int64_t integer(std::string_view key, std::int64_t fallback,
                         std::int64_t min, std::int64_t max) const {
        auto* n = find(key);
        if (!n)
            return fallback;
        auto v = n->value<std::int64_t>();
        if (!n->is_integer() || !v || *v < min || *v > max)
            fail(key,
                 fmt::format("must be an integer from {} to {}", min, max));
        return *v;
    }

    std::vector<std::string> strings(std::string_view key) const {
        std::vector<std::string> out;
        auto* n = find(key);
        if (!n)
            return out;
        auto* arr = n->as_array();
        if (!arr)
            fail(key, "must be a list of strings");
        for (auto& e : *arr) {
            auto v = e.value<std::string>();
            if (!e.is_string() || !v)
                fail(key, "must be a list of strings");
            out.push_back(*v);
        }
        return out;
    }

    std::filesystem::path path(std::string_view key, std::string fallback,
                               bool required = false) const {
        std::filesystem::path p = string(key, std::move(fallback), required);
        if (p.is_relative())
            p = file_.parent_path() / p;
        return p.lexically_normal();
    }

    std::vector<ListenAddress> addresses(std::string_view key) const {
        std::vector<ListenAddress> out;
        for (const auto& text : strings(key)) {
            auto colon = text.rfind(':');
            if (colon == std::string::npos)
                fail(key, fmt::format("'{}' must be host:port", text));
            ListenAddress a;
            a.host = text.substr(0, colon);
            if (a.host.size() > 2 && a.host.front() == '[')
                a.host = a.host.substr(1, a.host.size() - 2);
            std::error_code ec;
            asio::ip::make_address(a.host, ec);
            if (ec)
                fail(key, fmt::format("'{}' is not an IP address", a.host));
            int port = -1;
            try {
                std::size_t used = 0;
                port = std::stoi(text.substr(colon + 1), &used);
                if (used != text.size() - colon - 1)
                    port = -1;
            } catch (const std::exception&) {
            }
            if (port < 0 || port > 65535)
                fail(key, fmt::format("'{}' has no valid port", text));
            a.port = static_cast<std::uint16_t>(port);
            out.push_back(a);
        }
        return out;
    }

private:
    const toml::table& root_;
    const std::filesystem::path& file_;
    std::string prefix_;
};

// The script's file name ends with it: job.<extension>.
bool is_extension(std::string_view ext) {
    if (ext.empty() || ext.size() > 16)
        return false;
    for (char c : ext) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

std::vector<Runtime> read_runtimes(const toml::table& root,
                                   const std::filesystem::path& file,
                                   const Reader& r) {
    auto* table = root["runtimes"].as_table();
    if (!root["runtimes"])
        return platform::default_runtimes();
    if (!table)
        r.fail("runtimes", "must be a table of runtimes");

    std::vector<Runtime> out;
    for (auto& [name, value] : *table) {
        // A name may hold '.': quoted as TOML quotes it.
        std::string key = name.str().find('.') == std::string_view::npos
                              ? fmt::format("runtimes.{}", name.str())
                              : fmt::format("runtimes.\"{}\"", name.str());
        if (!cloudproto::is_valid_runtime_name(name.str()))
            r.fail(key, "is not a valid runtime name (lower-case letters, "
                        "digits, '.', '_', '+', '-')");
        auto* sub = value.as_table();
        if (!sub)
            r.fail(key, "must be a table with extension and command");
        Reader rr(*sub, file, key + ".");
        rr.only("", {"extension", "command"});

        Runtime rt;
        rt.name = name.str();
        rt.extension = rr.string("extension", {}, true);
        if (!is_extension(rt.extension))
            rr.fail("extension", "must be 1 to 16 lower-case letters or "
                                 "digits, without the dot");
        rt.command = rr.strings("command");
        if (rt.command.empty())
            rr.fail("command", "must list the program and its arguments");
        if (std::filesystem::path(rt.command[0]).is_relative())
            rr.fail("command", "must start with an absolute path");
        bool has_script = false;
        for (const auto& word : rt.command)
            has_script |= word == Runtime::script_placeholder;
        if (!has_script)
            rr.fail("command", "must contain \"{script}\"");
        out.push_back(std::move(rt));
    }
    return out;
}

constexpr std::string_view node_name_rule =
    "must be 1 to 64 of letters, digits, '.' and '-'";

// "sha256:AB:CD:..." or plain hex, any case -> 64 lower-case hex digits;
// empty when it is not a SHA-256 fingerprint.
std::string normalise_fingerprint(std::string text) {
    if (text.size() > 7 && (text.compare(0, 7, "sha256:") == 0 ||
                            text.compare(0, 7, "SHA256:") == 0))
        text.erase(0, 7);
    std::string hex;
    for (char ch : text) {
        if (ch == ':')
            continue;
        if (ch >= 'A' && ch <= 'F')
            ch = static_cast<char>(ch - 'A' + 'a');
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return {};
        hex += ch;
    }
    return hex.size() == 64 ? hex : std::string();
}

bool is_loopback(const std::string& host);

// lifetime_hours for operators, lifetime_seconds for a test that watches
// a mail run out of time; one of them at most.
std::chrono::seconds read_mail_lifetime(const Reader& r,
                                        std::chrono::seconds fallback) {
    constexpr std::int64_t max_hours = 30 * 24;
    bool hours = r.find("mail.lifetime_hours");
    bool seconds = r.find("mail.lifetime_seconds");
    if (hours && seconds)
        r.fail("mail.lifetime_seconds", "cannot go with lifetime_hours");
    if (seconds)
        return std::chrono::seconds{
            r.integer("mail.lifetime_seconds", 0, 1, max_hours * 3600)};
    if (hours)
        return std::chrono::hours{
            r.integer("mail.lifetime_hours", 0, 1, max_hours)};
    return fallback;
}

// [mail] server and what goes with it; nullopt without `server`.
std::optional<MailServer> read_mail_server(const Reader& r) {
    if (!r.find("mail.server"))
        return std::nullopt;
    MailServer m;
    auto address = r.string("mail.server", {});
    auto colon = address.rfind(':');
    auto port = colon == std::string::npos
                    ? std::nullopt
                    : cloudproto::parse_count(address.substr(colon + 1), 5);
    if (colon == 0 || !port || *port == 0 || *port > 65535)
        r.fail("mail.server", fmt::format("'{}' must be host:port, the port "
                                          "from 1 to 65535",
                                          address));
    m.host = address.substr(0, colon);
    if (m.host.size() > 2 && m.host.front() == '[')
        m.host = m.host.substr(1, m.host.size() - 2);
    m.port = address.substr(colon + 1);

    m.security = r.string("mail.security", "starttls");
    if (m.security != "starttls" && m.security != "tls" && m.security != "none")
        r.fail("mail.security", "must be starttls, tls or none");
    bool loopback = is_loopback(m.host) || m.host == "localhost";
    if (m.security == "none" && !loopback)
        r.fail("mail.security", "none (no TLS) is for a server on loopback "
                                "only");
    if (r.find("mail.authority"))
        m.authority = r.path("mail.authority", {});
    m.server_name = r.string("mail.server_name", m.host);
    m.helo_name = r.string("mail.helo_name", {});
    if (!m.helo_name.empty() && !is_helo_name(m.helo_name))
        r.fail("mail.helo_name", "must be a domain name (host.example.org) "
                                 "or an address literal ([192.0.2.1])");

    m.username = r.string("mail.username", {});
    if (!m.username.empty()) {
        auto file = r.path("mail.password_file", {}, true);
        m.password_file = file;
        std::ifstream in(file);
        if (!in || !std::getline(in, m.password) || m.password.empty())
            r.fail(
                "mail.password_file",
                fmt::format("cannot read a password from {}", file.string()));
        if (!m.password.empty() && m.password.back() == '\r')
            m.password.pop_back();
    }
    auto plain_auth = r.find("mail.allow_plaintext_auth");
    if (plain_auth) {
        auto v = plain_auth->value<bool>();
        if (!v)
            r.fail("mail.allow_plaintext_auth", "must be true or false");
        m.allow_plaintext_auth = *v;
    }
    if (m.allow_plaintext_auth && !loopback)
        r.fail("mail.allow_plaintext_auth",
               "credentials go without TLS only to a loopback server");
    if (m.security == "none" && !m.username.empty() && !m.allow_plaintext_auth)
        r.fail("mail.username", "would be sent without TLS; set "
                                "allow_plaintext_auth (loopback only)");

    using std::chrono::seconds;
    m.timeout =
        seconds{r.integer("mail.timeout_seconds", m.timeout.count(), 1, 3600)};
    m.data_timeout = seconds{r.integer("mail.data_timeout_seconds",
                                       m.data_timeout.count(), 1, 3600)};
    m.lifetime = read_mail_lifetime(r, m.lifetime);
    m.first_retry = seconds{r.integer("mail.first_retry_seconds", 60, 1, 3600)};
    m.max_retry = seconds{r.integer("mail.max_retry_seconds", 3600,
                                    m.first_retry.count(), 24 * 3600)};
    return m;
}

// One [[peers]] entry.
Peer read_peer(const toml::table& entry, const std::filesystem::path& file,
               std::size_t index) {
    Reader r(entry, file, fmt::format("peers[{}].", index));
    r.only("", {"name", "address", "fingerprint"});
    Peer p;
    p.name = r.string("name", {}, true);
    if (!cloudproto::is_valid_node_name(p.name))
        r.fail("name", node_name_rule);
    auto address = r.string("address", {}, true);
    auto colon = address.rfind(':');
    auto port = colon == std::string::npos
                    ? std::nullopt
                    : cloudproto::parse_count(address.substr(colon + 1), 5);
    if (colon == 0 || !port || *port == 0 || *port > 65535)
        r.fail("address", fmt::format("'{}' must be host:port, the port "
                                      "from 1 to 65535",
                                      address));
    p.host = address.substr(0, colon);
    if (p.host.size() > 2 && p.host.front() == '[')
        p.host = p.host.substr(1, p.host.size() - 2);
    p.port = address.substr(colon + 1);
    if (auto* f = r.find("fingerprint")) {
        p.fingerprint = normalise_fingerprint(f->value_or(std::string()));
        if (p.fingerprint.empty())
            r.fail("fingerprint", "must be the certificate's SHA-256 "
                                  "fingerprint, as openssl x509 "
                                  "-fingerprint -sha256 prints it");
    }
    return p;
}

// [federation] and [[peers]]: who this node exchanges jobs with, and how
// it recognises them.
Federation read_federation(const toml::table& root,
                           const std::filesystem::path& file, const Reader& r,
                           const Config& c) {
    Federation f;
    using std::chrono::seconds;
    if (r.find("federation.authority"))
        f.authority = r.path("federation.authority", {});
    f.hop_limit =
        r.integer("federation.hop_limit", cloudproto::default_hop_limit, 1,
                  cloudproto::max_hop_limit);
    f.capacity_interval =
        seconds{r.integer("federation.capacity_interval_seconds", 2, 1, 3600)};
    f.relay_timeout =
        seconds{r.integer("federation.relay_timeout_seconds", 30, 1, 3600)};

    auto* peers = root.get("peers");
    if (!peers)
        return f;
    auto* list = peers->as_array();
    if (!list)
        r.fail("peers", "must be an array of tables: [[peers]]");
    for (std::size_t i = 0; i < list->size(); ++i) {
        auto* entry = (*list)[i].as_table();
        if (!entry)
            r.fail("peers", "must be an array of tables: [[peers]]");
        Peer p = read_peer(*entry, file, i);
        auto where = fmt::format("peers[{}].name", i);
        if (cloudproto::same_node_name(p.name, c.name))
            r.fail(where, "is this node's own name");
        if (f.find_peer(p.name))
            r.fail(where, fmt::format("{} is listed twice", p.name));
        if (f.authority.empty() && p.fingerprint.empty())
            r.fail(fmt::format("peers[{}]", i),
                   "needs a fingerprint when [federation] names no "
                   "authority");
        f.peers.push_back(std::move(p));
    }
    if (c.listen_tls.empty())
        r.fail("peers", "need a TLS listener and certificate ([listen] tls)");
    return f;
}

// [limits] max_*: what one job may use at most.
platform::JobLimits read_job_maxima(const Reader& r) {
    constexpr std::int64_t mib = 1024 * 1024;
    constexpr std::int64_t tib = 1024 * 1024 * mib;
    platform::JobLimits m;
    m.memory_bytes =
        r.integer("limits.max_memory_bytes", 1024 * mib, 16 * mib, tib);
    m.cpu_seconds = r.integer("limits.max_cpu_seconds", 3600, 1, 7 * 24 * 3600);
    m.processes = r.integer("limits.max_processes", 128, 1, 1'000'000);
    m.disk_bytes = r.integer("limits.max_disk_bytes", 256 * mib, 1 * mib, tib);
    m.open_files = r.integer("limits.max_open_files", 1024, 16, 1'000'000);
    return m;
}

// [containment]: the level the node must reach, the layers it must not
// use, the uids of its slots.
ContainmentConfig read_containment(const Reader& r, std::size_t slots) {
    ContainmentConfig c;
    c.require_level = static_cast<int>(r.integer(
        "containment.require_level", 0, 0, platform::max_containment_level));
    for (const auto& name : r.strings("containment.disable")) {
        auto layer = platform::layer_from_string(name);
        if (!layer || *layer == platform::Layer::limits)
            r.fail("containment.disable",
                   fmt::format("'{}' is not a layer that can be turned off "
                               "(uid, namespaces, cgroup, seccomp)",
                               name));
        c.disabled.push_back(*layer);
    }
    // uid 0 is root, and the top ids are -1 and the overflow ids.
    constexpr std::int64_t max_uid = 4'000'000'000;
    c.first_uid = static_cast<std::uint32_t>(
        r.integer("containment.first_uid", c.first_uid, 1000,
                  max_uid - static_cast<std::int64_t>(slots)));
    return c;
}

bool is_loopback(const std::string& host) {
    std::error_code ec;
    auto a = asio::ip::make_address(host, ec);
    return !ec && a.is_loopback();
}

} // namespace

const Peer* Federation::find_peer(std::string_view wanted) const {
    for (const auto& p : peers) {
        if (cloudproto::same_node_name(p.name, wanted))
            return &p;
    }
    return nullptr;
}

std::vector<std::string>
Runtime::command_with(const std::vector<std::string>& args) const {
    std::vector<std::string> out = command;
    out.insert(out.end(), args.begin(), args.end());
    return out;
}

std::vector<std::string> Runtime::with_script(std::vector<std::string> command,
                                              const std::string& script) {
    for (auto& word : command) {
        if (word == script_placeholder)
            word = script;
    }
    return command;
}

const Runtime* Config::find_runtime(std::string_view wanted) const {
    for (const auto& rt : runtimes) {
        if (rt.name == wanted)
            return &rt;
    }
    return nullptr;
}

Config parse_config(std::string_view text, const std::filesystem::path& file) {
    toml::table root;
    try {
        root = toml::parse(text, file.string());
    } catch (const toml::parse_error& e) {
        throw ConfigError(fmt::format(
            "{}:{}:{}: not valid TOML: {}", file.string(),
            e.source().begin.line, e.source().begin.column, e.description()));
    }
    Reader r(root, file);
    Config c;
    c.file = file;

    // [node]
    c.name = r.string("node.name", {}, true);
    if (!cloudproto::is_valid_node_name(c.name))
        r.fail("node.name", node_name_rule);
    c.spool_dir = r.path("node.spool_dir", {}, true);
    c.work_dir = r.path("node.work_dir", (c.spool_dir / "work").string());
    c.log_level = r.string("node.log_level", "info");
    cloudproto::log::Level level;
    if (!cloudproto::log::parse_level(c.log_level, level))
        r.fail("node.log_level", "must be one of trace, debug, info, warn, "
                                 "error");

    // [listen] and [tls]
    c.listen_tls = r.addresses("listen.tls");
    c.listen_plain = r.addresses("listen.plain");
    if (c.listen_tls.empty() && c.listen_plain.empty())
        r.fail("listen", "names no address to listen on");
    for (const auto& a : c.listen_plain) {
        if (!is_loopback(a.host))
            r.fail("listen.plain", fmt::format("{} is not a loopback "
                                               "address; the plaintext "
                                               "listener is for loopback only",
                                               a.host));
    }
    if (!c.listen_tls.empty()) {
        c.certificate = r.path("tls.certificate", {}, true);
        c.private_key = r.path("tls.private_key", {}, true);
    }

    // [limits]
    using namespace cloudproto;
    using std::chrono::seconds;
    c.slots = r.integer("limits.slots", 2, 1, 1024);
    c.max_job_bytes = r.integer("limits.max_job_bytes", default_max_job_bytes,
                                1024, 1024LL * 1024 * 1024);
    c.max_output_bytes =
        r.integer("limits.max_output_bytes", default_max_output_bytes, 0,
                  1024LL * 1024 * 1024);
    c.max_queued_jobs = r.integer("limits.max_queued_jobs", 1000, 1, 1000000);
    c.max_connections = r.integer("limits.max_connections", 256, 1, 100000);
    c.max_connections_per_address =
        r.integer("limits.max_connections_per_address", 32, 1, 100000);
    c.max_timeout =
        seconds{r.integer("limits.max_timeout_seconds",
                          default_max_job_timeout.count(), 1, 7 * 24 * 3600)};
    c.default_timeout = seconds{r.integer("limits.default_timeout_seconds",
                                          default_job_timeout.count(), 1,
                                          c.max_timeout.count())};
    c.idle_timeout =
        seconds{r.integer("limits.idle_timeout_seconds",
                          default_idle_timeout.count(), 1, 24 * 3600)};
    c.handshake_timeout =
        seconds{r.integer("limits.handshake_timeout_seconds", 10, 1, 600)};
    c.result_retention = std::chrono::hours{
        r.integer("limits.result_retention_hours", 24 * 7, 1, 24 * 3650)};
    c.max_job = read_job_maxima(r);
    c.containment = read_containment(r, c.slots);

    // [mail]
    c.mail_from = r.string("mail.from", "cloud-node@" + c.name);
    if (!is_valid_address(c.mail_from))
        r.fail("mail.from", "is not a plain address like node@example.org");
    c.outbox_dir = r.path("mail.outbox_dir", (c.spool_dir / "outbox").string());
    c.mail_inline_limit_bytes =
        r.integer("mail.inline_limit_bytes", 16 * 1024, 0, 1024 * 1024);

    c.mail_server = read_mail_server(r);
    c.runtimes = read_runtimes(root, file, r);
    c.federation = read_federation(root, file, r, c);

    r.only("", {"node", "listen", "tls", "limits", "mail", "runtimes",
                "federation", "peers", "containment"});
    r.only("node", {"name", "spool_dir", "work_dir", "log_level"});
    r.only("listen", {"tls", "plain"});
    r.only("tls", {"certificate", "private_key"});
    r.only("limits",
           {"slots", "max_job_bytes", "max_output_bytes", "max_queued_jobs",
            "max_connections", "max_connections_per_address",
            "max_timeout_seconds", "default_timeout_seconds",
            "idle_timeout_seconds", "handshake_timeout_seconds",
            "result_retention_hours", "max_memory_bytes", "max_cpu_seconds",
            "max_processes", "max_disk_bytes", "max_open_files"});
    r.only("containment", {"require_level", "disable", "first_uid"});
    r.only("mail",
           {"from", "outbox_dir", "inline_limit_bytes", "server", "security",
            "authority", "server_name", "helo_name", "username",
            "password_file", "allow_plaintext_auth", "timeout_seconds",
            "data_timeout_seconds", "lifetime_hours", "lifetime_seconds",
            "first_retry_seconds", "max_retry_seconds"});
    r.only("federation", {"authority", "hop_limit", "capacity_interval_seconds",
                          "relay_timeout_seconds"});
    return c;
}

bool is_helo_name(std::string_view name) {
    if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
        auto inside = std::string(name.substr(1, name.size() - 2));
        bool v6 = inside.starts_with("IPv6:");
        std::error_code ec;
        auto address =
            asio::ip::make_address(v6 ? inside.substr(5) : inside, ec);
        return !ec && address.is_v6() == v6;
    }
    if (name.empty() || name.size() > 253)
        return false;
    std::size_t start = 0;
    for (;;) {
        auto dot = name.find('.', start);
        auto label = name.substr(start, dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' ||
            label.back() == '-')
            return false;
        for (char c : label)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-')
                return false;
        if (dot == std::string_view::npos)
            return true;
        start = dot + 1;
    }
}

void check_tls_files(const Config& c) {
    if (c.listen_tls.empty())
        return;
    const auto& authority = c.federation.authority;
    if (!authority.empty()) {
        try {
            auto probe = cloudproto::tls::make_client_context(authority);
        } catch (const std::runtime_error& e) {
            throw ConfigError(fmt::format("{}: federation.authority: {}",
                                          c.file.string(), e.what()));
        }
    }
    try {
        cloudproto::tls::make_server_context(c.certificate, c.private_key);
    } catch (const std::runtime_error& e) {
        // The message names the file; the key follows from which it is.
        std::string what = e.what();
        bool key_at_fault = what.find(c.private_key.string()) <
                            what.find(c.certificate.string());
        throw ConfigError(fmt::format(
            "{}: {}: {}", c.file.string(),
            key_at_fault ? "tls.private_key" : "tls.certificate", what));
    }
}

Config load_config(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw ConfigError(fmt::format("{}: cannot read the configuration file",
                                      file.string()));
    std::ostringstream text;
    text << in.rdbuf();
    auto absolute = std::filesystem::absolute(file);
    return parse_config(text.str(), absolute);
}

} // namespace cloudnode
