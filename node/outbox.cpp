#include "node/outbox.hpp"

#include "node/platform/durable_file.hpp"

#include "cloudproto/log.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cloudnode {

namespace fs = std::filesystem;

Outbox::Outbox(Spool& spool, fs::path folder)
    : spool_(spool), folder_(std::move(folder)) {
    fs::create_directories(folder_);
}

void Outbox::deliver(const std::string& id) {
    auto from = spool_.mail_path(id);
    auto to = folder_ / (id + ".eml");
    spool_.worker().run(
        [from, to] {
            // Copied, not renamed: the outbox may be on another disk.
            std::ifstream in(from, std::ios::binary);
            if (!in)
                throw std::runtime_error("cannot read " + from.string());
            std::ostringstream bytes;
            bytes << in.rdbuf();
            auto text = bytes.str();
            platform::FileWrite f{to, text};
            platform::write_files_durably({&f, 1});
            fs::remove(from);
        },
        [id, to](const std::string& error) {
            if (error.empty())
                cloudproto::log::info(id, "mail", "delivered",
                                      "result=ok outbox={}",
                                      cloudproto::log::value(to.string()));
            else
                cloudproto::log::error(id, "mail", "delivered",
                                       "result=tempfail error={}",
                                       cloudproto::log::value(error));
        });
}

} // namespace cloudnode
