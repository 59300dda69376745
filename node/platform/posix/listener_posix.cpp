#include "node/platform/listener.hpp"

namespace cloudnode::platform {

void claim_address(asio::ip::tcp::acceptor& acceptor, std::error_code& ec) {
    acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
}

} // namespace cloudnode::platform
