// The one thread that waits on the disk (fsync, large reads), so that the
// event loop never does. Work runs in order; each completion is posted
// back to the event loop.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace cloudnode {

class DiskWorker {
public:
    // Empty string: done; otherwise what went wrong, for a log line.
    using Done = std::function<void(std::string error)>;

    explicit DiskWorker(asio::io_context& io);
    ~DiskWorker(); // finishes queued work, then joins

    // `work` runs on the worker; an exception from it becomes `error`.
    void run(std::function<void()> work, Done done);

private:
    void loop();

    // Queued work keeps the event loop running until its completion has
    // been posted back.
    using Guard = asio::executor_work_guard<asio::io_context::executor_type>;
    struct Item {
        std::function<void()> work;
        Done done;
        Guard guard;
    };

    asio::io_context& io_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Item> queue_;
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace cloudnode
