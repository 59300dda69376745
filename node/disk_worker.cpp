#include "node/disk_worker.hpp"

#include <asio/post.hpp>

#include <exception>
#include <optional>

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
        queue_.push_back(Item{std::move(work), std::move(done),
                              asio::make_work_guard(io_)});
    }
    wake_.notify_one();
}

void DiskWorker::loop() {
    for (;;) {
        std::optional<Item> item;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty())
                return;
            item.emplace(std::move(queue_.front()));
            queue_.pop_front();
        }

        std::string error;
        try {
            item->work();
        } catch (const std::exception& e) {
            error = e.what();
        }
        if (item->done)
            asio::post(io_, [done = std::move(item->done),
                             error = std::move(error)] { done(error); });
        item->guard.reset();
    }
}

} // namespace cloudnode
