// The command line of cloud-submit.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace cloudsubmit {

enum class Action { submit, status, result, help, version };

struct Options {
    Action action = Action::submit;
    std::string script;     // submit
    std::string descriptor; // submit
    std::string job_id;     // status, result; submit with --job-id
    std::string host = "localhost";
    std::string port;
    std::optional<std::string> ca_file;
    bool plain = false;
    bool wait = false;
    bool quiet = false;
    std::chrono::seconds timeout{30};
};

extern const char* const usage;

// Reads argv and the environment (CLOUD_NODE, CLOUD_CA). On a mistake,
// `error` says what, for one line.
std::optional<Options> parse_options(int argc, char** argv,
                                     std::string& error);

} // namespace cloudsubmit
