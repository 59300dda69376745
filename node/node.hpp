// The node as a whole: builds every part from the configuration, brings
// back what the spool holds, serves until told to stop.
#pragma once

#include "node/config.hpp"
#include "node/executor.hpp"
#include "node/job_table.hpp"
#include "node/mailer.hpp"
#include "node/router.hpp"
#include "node/scheduler.hpp"
#include "node/server.hpp"
#include "node/session.hpp"
#include "node/spool.hpp"

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/ssl/context.hpp>

#include <memory>
#include <optional>

namespace cloudnode {

class Node {
public:
    // Throws std::runtime_error (or ConfigError) when it cannot start.
    explicit Node(Config config);

    // Serves until SIGINT or SIGTERM; returns the process exit status.
    int run();

private:
    void recover();
    void shut_down(int signal);

    Config config_;
    asio::io_context io_;
    std::optional<asio::ssl::context> tls_;
    std::unique_ptr<platform::Containment> containment_;
    Spool spool_;
    Executor executor_;
    JobTable jobs_;
    Scheduler scheduler_;
    Router router_;
    std::optional<Mailer> mailer_; // with a mail server configured
    SessionContext session_context_;
    Server server_;
    asio::signal_set signals_;
    asio::steady_timer shutdown_deadline_;
};

} // namespace cloudnode
