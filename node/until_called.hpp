// Waiting, inside a session's coroutine, for work that reports through a
// callback (the spool's disk work, say).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace cloudnode {

// Starts work that reports through a callback, and suspends until it has:
// `start` receives the function to call when done.
template <typename Start>
asio::awaitable<void> until_called(Start start) {
    asio::steady_timer wake(co_await asio::this_coro::executor,
                            asio::steady_timer::time_point::max());
    bool called = false;
    start([&called, &wake] {
        called = true;
        wake.cancel();
    });
    while (!called) {
        std::error_code ec;
        co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

} // namespace cloudnode
