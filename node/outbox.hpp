// Delivery of result mails when no mail server is configured: each mail
// becomes one .eml file in the outbox folder, then leaves the spool.
#pragma once

#include "node/spool.hpp"

#include <filesystem>
#include <string>

namespace cloudnode {

class Outbox {
public:
    Outbox(Spool& spool, std::filesystem::path folder);

    // Moves the spooled mail of job `id` into the outbox, durably.
    void deliver(const std::string& id);

private:
    Spool& spool_;
    std::filesystem::path folder_;
};

} // namespace cloudnode
