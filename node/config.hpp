// The node's one configuration file (TOML). Every limit an operator may
// want to set is here; README and examples/ show each key.
#pragma once

#include "node/platform/containment.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cloudnode {

struct Runtime {
    static constexpr std::string_view script_placeholder = "{script}";

    std::string name;      // the open token customers name: "bash"
    std::string extension; // the script's file name ends with it: "sh"
    std::vector<std::string> command; // "{script}" marks the script

    // What a job with these arguments runs: the command, then the
    // arguments; "{script}" still marks the script.
    std::vector<std::string>
    command_with(const std::vector<std::string>& args) const;
    // Each "{script}" of `command` replaced by `script`.
    static std::vector<std::string>
    with_script(std::vector<std::string> command, const std::string& script);
};

struct ListenAddress {
    std::string host;
    std::uint16_t port = 0; // 0: any free port (tests)
};

// A provider this node exchanges jobs with (proto-spec "Peers").
struct Peer {
    std::string name; // must be named by its certificate
    std::string host; // where its TLS listener is
    std::string port;
    std::string fingerprint; // SHA-256 of its certificate, lower-case
                             // hex; empty: not pinned
};

struct Federation {
    std::filesystem::path authority; // signs peers' certificates; empty:
                                     // every peer is pinned instead
    std::size_t hop_limit = 8;
    std::chrono::seconds capacity_interval{2};
    std::chrono::seconds relay_timeout{30};
    std::vector<Peer> peers;

    const Peer* find_peer(std::string_view name) const;
};

// The mail server result mails go through; none: the outbox folder.
struct MailServer {
    std::string host;
    std::string port;
    std::string security = "starttls"; // "starttls", "tls" or "none"
    std::filesystem::path authority;   // empty: the system's
    std::string server_name;           // in its certificate; default host
    std::string helo_name;             // empty: the mailer chooses
    std::string username;              // AUTH when set
    std::filesystem::path password_file;
    std::string password;                   // from password_file; never logged
    bool allow_plaintext_auth = false;      // loopback only
    std::chrono::seconds timeout{300};      // each reply, RFC 5321 4.5.3.2
    std::chrono::seconds data_timeout{600}; // the reply after the message
    std::chrono::seconds lifetime{5 * 24 * 3600};
    std::chrono::seconds first_retry{60};
    std::chrono::seconds max_retry{3600};
};

// How jobs are contained ([containment]; proto-spec "Containment").
struct ContainmentConfig {
    int require_level = 0; // start-up fails below it
    std::vector<platform::Layer> disabled;
    // Slot i runs as uid and gid first_uid + i when the node is root;
    // nothing else on the machine may use those ids.
    std::uint32_t first_uid = 1'000'000'000;
};

struct Config {
    std::filesystem::path file; // where it was read from

    std::string name;
    std::filesystem::path spool_dir;
    std::filesystem::path work_dir;
    std::string log_level = "info";

    std::vector<ListenAddress> listen_tls;
    std::vector<ListenAddress> listen_plain; // loopback only
    std::filesystem::path certificate;
    std::filesystem::path private_key;

    std::size_t slots = 2;
    std::size_t max_job_bytes = 0;
    std::size_t max_output_bytes = 0;
    std::size_t max_queued_jobs = 1000;
    std::size_t max_connections = 256;
    std::size_t max_connections_per_address = 32; // IPv6: per /64
    std::chrono::seconds default_timeout{0};
    std::chrono::seconds max_timeout{0};
    std::chrono::seconds idle_timeout{0};
    std::chrono::seconds handshake_timeout{10};
    std::chrono::hours result_retention{24 * 7};
    // The most one job may use; a descriptor's asks are clamped to it.
    platform::JobLimits max_job;
    ContainmentConfig containment;

    std::string mail_from;
    std::filesystem::path outbox_dir;
    std::size_t mail_inline_limit_bytes = 16 * 1024;
    std::optional<MailServer> mail_server;

    std::vector<Runtime> runtimes;
    Federation federation;

    const Runtime* find_runtime(std::string_view name) const;
};

// A configuration that cannot be used; what() names the file, the key and
// what is wrong, ready to print.
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Reads and checks the file; relative paths in it are taken from the
// file's folder. Throws ConfigError.
Config load_config(const std::filesystem::path& file);

// Loads the certificate and key the configuration names, so that a bad
// one is reported against its key. Throws ConfigError.
void check_tls_files(const Config& config);

// EHLO's argument as RFC 5321 4.1.2 has it: a domain name or an address
// literal ("[192.0.2.1]", "[IPv6:2001:db8::1]").
bool is_helo_name(std::string_view name);

// The same, from text (tests); `file` names it in messages.
Config parse_config(std::string_view text, const std::filesystem::path& file);

} // namespace cloudnode
