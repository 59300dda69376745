// cloud-node: the intake server, executor and mailer of one provider.
#include "node/config.hpp"
#include "node/node.hpp"

#include "cloudproto/log.hpp"
#include "cloudproto/protocol.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <string_view>

namespace {

constexpr std::string_view usage = R"(usage: cloud-node --config FILE [--check]

Runs one node of a cloudproto federation: it accepts jobs over TLS,
runs them, and mails their results.

  -c, --config FILE   the node's TOML configuration (see examples/)
      --check         read and check the configuration, then exit
  -h, --help          this text
      --version       the program's and the protocol's versions

Logs go to standard error, one line per event. SIGINT or SIGTERM stop
the node; jobs not finished then run again at the next start.
)";

int fail(const std::string& message) {
    fmt::print(stderr, "cloud-node: {}\n", message);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::string config_file;
    bool check_only = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            fmt::print("{}", usage);
            return 0;
        } else if (arg == "--version") {
            fmt::print("cloud-node 0.1.0 ({})\n",
                       cloudproto::protocol_name);
            return 0;
        } else if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
            config_file = argv[++i];
        } else if (arg == "--check") {
            check_only = true;
        } else {
            return fail(fmt::format("unknown argument '{}'; try --help", arg));
        }
    }
    if (config_file.empty())
        return fail("no configuration given; try --help");

    try {
        auto config = cloudnode::load_config(config_file);
        cloudnode::check_tls_files(config);
        if (check_only) {
            fmt::print("{}: configuration is valid\n", config.file.string());
            return 0;
        }
        cloudnode::Node node(std::move(config));
        return node.run();
    } catch (const cloudnode::ConfigError& e) {
        return fail(fmt::format("configuration error: {}", e.what()));
    } catch (const std::exception& e) {
        return fail(fmt::format("cannot start: {}", e.what()));
    }
}
