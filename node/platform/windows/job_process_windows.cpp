// Job processes on Windows. Each job's tree lives in a job object of its
// own: the program starts suspended, joins the job, then runs, and every
// process it starts belongs to the same job and cannot break away. Once
// the program ends, or the node stops it, TerminateJobObject kills what
// is left of the tree, detached processes included, and the end is
// reported once the job holds no process and both output streams are at
// their end. KILL_ON_JOB_CLOSE: a node that dies takes its jobs' trees
// with it.
//
// Output comes through two named pipes, the node's ends opened for
// overlapped reads by asio on the event loop's completion port. The
// program inherits only its three standard handles; stdin is NUL.
#include "node/platform/job_process.hpp"

#include "node/platform/windows/command_line_windows.hpp"
#include "node/platform/windows/windows_text.hpp"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/windows/object_handle.hpp>
#include <asio/windows/stream_handle.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cwctype>
#include <random>

namespace cloudnode::platform {
namespace {

using windows::Handle;
using windows::widen;

constexpr std::size_t read_chunk_bytes = 64 * 1024;
constexpr DWORD pipe_buffer_bytes = 64 * 1024;

// How often a killed tree is asked whether it still holds a process.
constexpr std::chrono::milliseconds tree_poll_interval{10};

// Once the tree is gone, the output pipes get this long to reach their
// end: a process outside the job that was handed a write end cannot
// hold the job past it.
constexpr std::chrono::milliseconds output_grace{250};

// The exit code of the processes TerminateJobObject kills. Windows has
// no signals; a tree the node killed is reported as SIGKILL's number,
// as on POSIX, so that reports read the same everywhere.
constexpr UINT killed_exit_code = 137;
constexpr int killed_signal = 9;

constexpr std::int64_t ticks_per_second = 10'000'000; // of 100 ns

std::string last_error_text() {
    return windows::error_text(GetLastError());
}

// The job object and its limits (the `limits` layer).
Handle make_job_object(const JobLimits& limits, std::string& error) {
    Handle job(CreateJobObjectW(nullptr, nullptr));
    if (!job.valid()) {
        error = "cannot create a job object: " + last_error_text();
        return {};
    }
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
    auto& basic = info.BasicLimitInformation;
    basic.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE |
                       JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
    if (limits.memory_bytes != 0) {
        basic.LimitFlags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
        info.JobMemoryLimit = static_cast<SIZE_T>(limits.memory_bytes);
    }
    if (limits.cpu_seconds != 0) {
        basic.LimitFlags |= JOB_OBJECT_LIMIT_JOB_TIME;
        basic.PerJobUserTimeLimit.QuadPart =
            static_cast<LONGLONG>(limits.cpu_seconds) * ticks_per_second;
    }
    if (limits.processes != 0) {
        basic.LimitFlags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
        basic.ActiveProcessLimit = static_cast<DWORD>(
            std::min<std::uint64_t>(limits.processes, MAXDWORD));
    }
    // TODO(#6): disk_bytes and open_files have no job object limit;
    // until a quota or a handle count is watched, they are not enforced
    // on Windows.
    if (!SetInformationJobObject(job.get(), JobObjectExtendedLimitInformation,
                                 &info, sizeof info)) {
        error = "cannot set the job's limits: " + last_error_text();
        return {};
    }
    return job;
}

// A pipe whose node end reads overlapped and whose other end the program
// inherits for writing. Named, since anonymous pipes cannot be
// overlapped; the name is unique and the pipe takes one client only.
bool make_output_pipe(Handle& node_end, Handle& program_end,
                      std::string& error) {
    static std::atomic<unsigned long> serial{0};
    static const unsigned long salt = std::random_device{}();
    const std::wstring name = L"\\\\.\\pipe\\cloudproto-job-" +
                              std::to_wstring(GetCurrentProcessId()) + L"-" +
                              std::to_wstring(salt) + L"-" +
                              std::to_wstring(serial++);
    node_end.reset(CreateNamedPipeW(name.c_str(),
                                    PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED |
                                        FILE_FLAG_FIRST_PIPE_INSTANCE,
                                    PIPE_TYPE_BYTE | PIPE_READMODE_BYTE |
                                        PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                                    1, 0, pipe_buffer_bytes, 0, nullptr));
    if (!node_end.valid()) {
        error = "cannot create a pipe: " + last_error_text();
        return false;
    }
    SECURITY_ATTRIBUTES inherit{sizeof inherit, nullptr, TRUE};
    program_end.reset(CreateFileW(name.c_str(), GENERIC_WRITE, 0, &inherit,
                                  OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL,
                                  nullptr));
    if (!program_end.valid()) {
        error = "cannot open a pipe: " + last_error_text();
        return false;
    }
    return true;
}

// NAME=value entries, sorted by name as Windows expects, each ended by a
// NUL, the whole ended by one more.
std::wstring environment_block(const std::vector<std::string>& env) {
    std::vector<std::wstring> entries;
    for (const auto& entry : env)
        entries.push_back(widen(entry));
    auto name_of = [](const std::wstring& e) {
        std::wstring name = e.substr(0, e.find(L'='));
        for (auto& c : name)
            c = static_cast<wchar_t>(std::towupper(c));
        return name;
    };
    std::sort(entries.begin(), entries.end(),
              [&](const std::wstring& a, const std::wstring& b) {
                  return name_of(a) < name_of(b);
              });
    std::wstring block;
    for (const auto& entry : entries) {
        block += entry;
        block += L'\0';
    }
    block += L'\0';
    return block;
}

// Inherits exactly `handles` (the attribute list is how; a plain
// bInheritHandles would hand on every inheritable handle of the node).
class InheritList {
public:
    explicit InheritList(std::array<HANDLE, 3> handles) : handles_(handles) {
        SIZE_T size = 0;
        InitializeProcThreadAttributeList(nullptr, 1, 0, &size);
        buffer_.resize(size);
        list_ = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(buffer_.data());
        ok_ = InitializeProcThreadAttributeList(list_, 1, 0, &size) &&
              UpdateProcThreadAttribute(
                  list_, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, handles_.data(),
                  sizeof(HANDLE) * handles_.size(), nullptr, nullptr);
    }
    ~InheritList() {
        if (ok_)
            DeleteProcThreadAttributeList(list_);
    }
    InheritList(const InheritList&) = delete;
    InheritList& operator=(const InheritList&) = delete;

    bool ok() const { return ok_; }
    LPPROC_THREAD_ATTRIBUTE_LIST get() const { return list_; }

private:
    std::array<HANDLE, 3> handles_;
    std::vector<char> buffer_;
    LPPROC_THREAD_ATTRIBUTE_LIST list_ = nullptr;
    bool ok_ = false;
};

} // namespace

struct JobProcess::Impl : std::enable_shared_from_this<Impl> {
    explicit Impl(asio::io_context& io)
        : io(io), program(io), out(io), err(io), tree_timer(io),
          output_timer(io) {}

    void start(const JobSpec& spec);
    void fail_early(std::string error);
    void read_output(asio::windows::stream_handle& stream,
                     std::array<char, read_chunk_bytes>& buffer,
                     JobStream which);
    void watch_program();
    void on_program_end();
    void wait_for_tree();
    void close_output();
    void part_done();
    void stop();

    asio::io_context& io;
    Handlers handlers;
    bool detached = false; // the JobProcess is gone: run no handler

    Handle job;
    asio::windows::object_handle program;
    asio::windows::stream_handle out;
    asio::windows::stream_handle err;
    asio::steady_timer tree_timer;   // tree_poll_interval
    asio::steady_timer output_timer; // output_grace
    std::array<char, read_chunk_bytes> out_buffer;
    std::array<char, read_chunk_bytes> err_buffer;

    bool running = false; // the program itself
    bool stopped = false;
    DWORD exit_code = 0;

    // Out at its end, err at its end, the tree gone.
    int parts_left = 3;
};

void JobProcess::Impl::fail_early(std::string error) {
    parts_left = 0;
    if (job.valid())
        TerminateJobObject(job.get(), killed_exit_code);
    asio::post(io, [self = shared_from_this(), error = std::move(error)] {
        JobEnd end;
        end.error = error;
        auto on_end = std::move(self->handlers.on_end);
        self->handlers = {};
        if (on_end && !self->detached)
            on_end(std::move(end));
    });
}

void JobProcess::Impl::start(const JobSpec& spec) {
    std::string error;
    const std::string line = windows::command_line(spec.argv, error);
    if (line.empty())
        return fail_early(std::move(error));
    job = make_job_object(spec.limits, error);
    if (!job.valid())
        return fail_early(std::move(error));

    // Standard handles: NUL in, one pipe per output stream.
    SECURITY_ATTRIBUTES inherit{sizeof inherit, nullptr, TRUE};
    Handle nul(CreateFileW(L"NUL", GENERIC_READ,
                           FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit,
                           OPEN_EXISTING, 0, nullptr));
    if (!nul.valid())
        return fail_early("cannot open NUL: " + last_error_text());
    Handle out_node, out_program, err_node, err_program;
    if (!make_output_pipe(out_node, out_program, error) ||
        !make_output_pipe(err_node, err_program, error))
        return fail_early(std::move(error));
    InheritList inherited({nul.get(), out_program.get(), err_program.get()});
    if (!inherited.ok())
        return fail_early("cannot list the handles the job inherits: " +
                          last_error_text());

    // Suspended until it is in the job, so that nothing it starts can
    // be outside it.
    STARTUPINFOEXW startup{};
    startup.StartupInfo.cb = sizeof startup;
    startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    startup.StartupInfo.hStdInput = nul.get();
    startup.StartupInfo.hStdOutput = out_program.get();
    startup.StartupInfo.hStdError = err_program.get();
    startup.lpAttributeList = inherited.get();
    std::wstring command = widen(line);
    std::wstring environment = environment_block(spec.env);
    PROCESS_INFORMATION created{};
    if (!CreateProcessW(widen(spec.argv.front()).c_str(), command.data(),
                        nullptr, nullptr, TRUE,
                        CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT |
                            EXTENDED_STARTUPINFO_PRESENT | CREATE_NO_WINDOW,
                        environment.data(), spec.working_folder.c_str(),
                        &startup.StartupInfo, &created))
        return fail_early("cannot execute " + spec.argv.front() + ": " +
                          last_error_text());
    Handle process(created.hProcess);
    Handle thread(created.hThread);
    if (!AssignProcessToJobObject(job.get(), process.get())) {
        error =
            "cannot put the program in its job object: " + last_error_text();
        TerminateProcess(process.get(), killed_exit_code);
        return fail_early(std::move(error));
    }
    ResumeThread(thread.get());
    running = true;

    // The program's ends are its own now.
    nul.reset();
    out_program.reset();
    err_program.reset();
    program.assign(process.release());
    out.assign(out_node.release());
    err.assign(err_node.release());
    read_output(out, out_buffer, JobStream::out);
    read_output(err, err_buffer, JobStream::err);
    watch_program();
}

void JobProcess::Impl::read_output(asio::windows::stream_handle& stream,
                                   std::array<char, read_chunk_bytes>& buffer,
                                   JobStream which) {
    stream.async_read_some(
        asio::buffer(buffer), [self = shared_from_this(), &stream, &buffer,
                               which](std::error_code ec, std::size_t n) {
            if (n > 0 && !self->detached && self->handlers.on_output)
                self->handlers.on_output(which, {buffer.data(), n});
            if (ec) {
                // A broken pipe: every holder of the write end is gone.
                std::error_code ignored;
                stream.close(ignored);
                return self->part_done();
            }
            self->read_output(stream, buffer, which);
        });
}

void JobProcess::Impl::watch_program() {
    program.async_wait([self = shared_from_this()](std::error_code) {
        self->on_program_end();
    });
}

// The program is gone: what it left behind is killed, and the tree
// watched until it holds no process.
void JobProcess::Impl::on_program_end() {
    running = false;
    GetExitCodeProcess(program.native_handle(), &exit_code);
    std::error_code ignored;
    program.close(ignored);
    TerminateJobObject(job.get(), killed_exit_code);
    wait_for_tree();
}

void JobProcess::Impl::wait_for_tree() {
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION accounting{};
    const bool known = QueryInformationJobObject(
        job.get(), JobObjectBasicAccountingInformation, &accounting,
        sizeof accounting, nullptr);
    if (known && accounting.ActiveProcesses > 0) {
        tree_timer.expires_after(tree_poll_interval);
        tree_timer.async_wait([self = shared_from_this()](std::error_code) {
            self->wait_for_tree();
        });
        return;
    }
    if (out.is_open() || err.is_open()) {
        output_timer.expires_after(output_grace);
        output_timer.async_wait(
            [self = shared_from_this()](std::error_code ec) {
                if (!ec)
                    self->close_output();
            });
    }
    part_done();
}

// The pipes' pending reads end, each with its part_done.
void JobProcess::Impl::close_output() {
    std::error_code ignored;
    out.close(ignored);
    err.close(ignored);
}

void JobProcess::Impl::part_done() {
    if (--parts_left > 0)
        return;
    output_timer.cancel();
    JobEnd end;
    end.ran = true;
    end.stopped = stopped;
    if (stopped)
        end.signal = killed_signal;
    else
        end.exit_code = static_cast<int>(exit_code);
    job.reset();
    auto on_end = std::move(handlers.on_end);
    handlers = {}; // they may hold their owner alive
    if (on_end && !detached)
        on_end(std::move(end));
}

void JobProcess::Impl::stop() {
    if (!running || stopped)
        return;
    stopped = true;
    TerminateJobObject(job.get(), killed_exit_code);
}

JobProcess::JobProcess(asio::io_context& io, const JobSpec& spec,
                       const Containment&, Handlers handlers)
    : impl_(std::make_shared<Impl>(io)) {
    impl_->handlers = std::move(handlers);
    impl_->start(spec);
}

JobProcess::~JobProcess() {
    // The pending reads and waits keep impl_ alive until the tree is
    // gone; they only stop calling back.
    impl_->detached = true;
    impl_->stop();
}

void JobProcess::stop() {
    impl_->stop();
}

} // namespace cloudnode::platform
