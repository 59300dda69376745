#include "node/disk_worker.hpp"

#include <asio/post.hpp>

#include <exception>

namespace cloudnode {

DiskWorker::DiskWorker(asio::io_context& io)
    : io_(io), thread_([this] { loop(); }) {}

DiskWorker::~DiskWorker() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void DiskWorker::run(std::function<void()> work, Done done) {
    {
        std::lock_guard lock(mutex_);
        queue_.emplace_back(std::move(work), std::move(done));
    }
    wake_.notify_one();
}

void DiskWorker::loop() {
    for (;;) {
        std::pair<std::function<void()>, Done> item;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty())
                return;
            item = std::move(queue_.front());
            queue_.pop_front();
        }

        std::string error;
        try {
            item.first();
        } catch (const std::exception& e) {
            error = e.what();
        }
        if (item.second)
            asio::post(io_, [done = std::move(item.second),
                             error = std::move(error)] { done(error); });
    }
}

} // namespace cloudnode
