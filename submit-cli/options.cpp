#include "options.hpp"

#include "cloudproto/job_id.hpp"
#include "cloudproto/protocol.hpp"

#include <cstdlib>
#include <string_view>
#include <vector>

namespace cloudsubmit {

const char* const usage = R"(usage:
  cloud-submit [options] SCRIPT DESCRIPTOR   hand a job in; print its id
  cloud-submit [options] --status JOB-ID     print what the node knows of it
  cloud-submit [options] --result JOB-ID     print its output

options:
  -n, --node HOST:PORT   the node (default: $CLOUD_NODE, else localhost:25683)
      --ca FILE          the authority that signed the node's certificate
                         (default: $CLOUD_CA, else the system's)
      --plain            use the node's plaintext listener (loopback only)
  -w, --wait             wait for the job, showing progress, then print
                         its stdout and stderr and exit with its status
      --job-id ID        hand the job in under this id (to retry a
                         hand-in safely: the node runs it once)
  -q, --quiet            no progress lines
      --timeout SECONDS  how long to wait for the node to answer (30)
  -h, --help             this text
      --version          the program's and the protocol's versions

With --wait or --result, the exit status is the job's: its exit code,
128+N when killed by signal N, 124 when it ran out of time. cloud-submit's
own failures (no node, TLS, a refused job) exit with 255 and one line on
standard error.
)";

namespace {

bool split_node(std::string_view node, Options& o) {
    auto colon = node.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == node.size())
        return false;
    o.host = std::string(node.substr(0, colon));
    if (o.host.size() > 2 && o.host.front() == '[' && o.host.back() == ']')
        o.host = o.host.substr(1, o.host.size() - 2);
    o.port = std::string(node.substr(colon + 1));
    return !o.host.empty();
}

} // namespace

std::optional<Options> parse_options(int argc, char** argv,
                                     std::string& error) {
    Options o;
    o.port = std::to_string(cloudproto::default_port);
    if (const char* env = std::getenv("CLOUD_NODE"); env && *env)
        split_node(env, o);
    if (const char* env = std::getenv("CLOUD_CA"); env && *env)
        o.ca_file = env;

    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::optional<std::string> {
            if (i + 1 >= argc)
                return std::nullopt;
            return std::string(argv[++i]);
        };
        std::optional<std::string> v;
        if (a == "-h" || a == "--help") {
            o.action = Action::help;
            return o;
        } else if (a == "--version") {
            o.action = Action::version;
            return o;
        } else if (a == "-w" || a == "--wait") {
            o.wait = true;
        } else if (a == "-q" || a == "--quiet") {
            o.quiet = true;
        } else if (a == "--plain") {
            o.plain = true;
        } else if (a == "-n" || a == "--node") {
            if (!(v = value()) || !split_node(*v, o)) {
                error = "--node needs HOST:PORT";
                return std::nullopt;
            }
        } else if (a == "--ca") {
            if (!(v = value())) {
                error = "--ca needs a file";
                return std::nullopt;
            }
            o.ca_file = *v;
        } else if (a == "--status" || a == "--result" || a == "--job-id") {
            if (!(v = value()) || !cloudproto::is_valid_job_id(*v)) {
                error = std::string(a) + " needs a job id (16 to 64 of "
                                         "A-Z a-z 0-9 - _)";
                return std::nullopt;
            }
            o.job_id = *v;
            if (a == "--status")
                o.action = Action::status;
            else if (a == "--result")
                o.action = Action::result;
        } else if (a == "--timeout") {
            long n = 0;
            if ((v = value()))
                n = std::strtol(v->c_str(), nullptr, 10);
            if (n < 1 || n > 3600) {
                error = "--timeout needs seconds from 1 to 3600";
                return std::nullopt;
            }
            o.timeout = std::chrono::seconds{n};
        } else if (a.size() > 1 && a[0] == '-') {
            error = "unknown option " + std::string(a) + "; try --help";
            return std::nullopt;
        } else {
            positional.emplace_back(a);
        }
    }

    if (o.action == Action::submit) {
        if (positional.size() != 2) {
            error = "give a SCRIPT and a DESCRIPTOR, or --status/--result "
                    "JOB-ID; try --help";
            return std::nullopt;
        }
        o.script = positional[0];
        o.descriptor = positional[1];
    } else if (!positional.empty()) {
        error = "unexpected argument " + positional[0] + "; try --help";
        return std::nullopt;
    }
    return o;
}

} // namespace cloudsubmit
