#include "node/platform/listener.hpp"

#include <winsock2.h>

namespace cloudnode::platform {

void claim_address(asio::ip::tcp::acceptor& acceptor, std::error_code& ec) {
    const BOOL on = TRUE;
    if (setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_EXCLUSIVEADDRUSE,
                   reinterpret_cast<const char*>(&on), sizeof on) != 0)
        ec.assign(WSAGetLastError(), std::system_category());
    else
        ec.clear();
}

} // namespace cloudnode::platform
