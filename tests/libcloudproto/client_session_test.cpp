#include "cloudproto/client_session.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace cloudproto;

TEST_CASE("HELLO capabilities: keywords in any case, unknown ones kept") {
    Reply hello;
    hello.code = 250;
    hello.lines = {"alpha hello me", "version 1", "Runtimes bash perl",
                   "max-job-bytes 4096", "X-FUTURE a b", "WAIT"};
    auto caps = Capabilities::from_reply(hello);
    CHECK(caps.version == 1);
    CHECK(caps.runtimes == std::vector<std::string>{"bash", "perl"});
    CHECK(caps.max_job_bytes == 4096);
    CHECK(caps.has("WAIT"));
    CHECK(caps.has("X-FUTURE"));
    CHECK(caps.keywords["X-FUTURE"] == "a b");
}
