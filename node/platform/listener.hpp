// How the node holds the addresses it listens on. Each platform has its
// source beside this header (posix/listener_posix.cpp,
// windows/listener_windows.cpp).
#pragma once

#include <asio/ip/tcp.hpp>

#include <system_error>

namespace cloudnode::platform {

// Set on an open acceptor before it binds: a restarted node binds its
// address again at once, and no other program binds it beside the node.
// POSIX: SO_REUSEADDR, which lets the connections a node closed last
// (TIME_WAIT) stay on the port, and never lets a second socket bind an
// address one listens on. Windows: SO_EXCLUSIVEADDRUSE, since
// SO_REUSEADDR there would let any program take the node's port.
void claim_address(asio::ip::tcp::acceptor& acceptor, std::error_code& ec);

} // namespace cloudnode::platform
