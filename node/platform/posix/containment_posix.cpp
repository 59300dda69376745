// Containment on Linux: which layers this machine allows, found by
// running a throwaway job with one more layer at a time, and the plan
// each job's processes follow (containment_child_posix.cpp).
#include "node/platform/posix/containment_posix.hpp"

#include "node/platform/job_process.hpp"
#include "node/platform/posix/slot_uids_posix.hpp"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <fstream>
#include <system_error>

#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace cloudnode::platform {

namespace fs = std::filesystem;
using contain::MountStep;

namespace {

// What a job sees of the machine, read-only: its programs, libraries
// and settings. Everything else (the node's folders, /home, /var, /run)
// is simply not there.
constexpr std::string_view system_folders[] = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
};
constexpr std::string_view devices[] = {"null", "zero", "full", "random",
                                        "urandom"};

// The job's root is built on this folder of the node's view, in the
// job's own mount namespace, then entered with pivot_root.
constexpr std::string_view new_root = "/tmp";
constexpr std::string_view old_root_name = ".old-root";
// The root holds mount points only; /dev holds device nodes bound in.
constexpr std::string_view root_options = "size=1m,mode=0755";
constexpr std::string_view dev_options = "size=64k,mode=0755";
constexpr std::string_view cover_options = "size=4k,mode=0755";
constexpr unsigned long cover_flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;

// The throwaway job: it must exit with this status.
constexpr std::string_view probe_script = "exit 7\n";
constexpr int probe_exit_code = 7;
constexpr std::chrono::seconds probe_timeout{10};
constexpr std::uint64_t probe_memory_bytes = 256 * 1024 * 1024;

// Flags of the mount that holds `path`, that a read-only remount of a
// bind of it must keep (a user namespace may not drop them).
unsigned long locked_flags(const fs::path& path) {
    struct statvfs st {};
    if (statvfs(path.c_str(), &st) != 0)
        return MS_NOSUID;
    unsigned long flags = MS_NOSUID; // a job never gains privileges
    if (st.f_flag & ST_NODEV)
        flags |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC)
        flags |= MS_NOEXEC;
    return flags;
}

std::string under_root(const fs::path& path) {
    return std::string(new_root) + path.string();
}

bool is_within(const fs::path& inner, const fs::path& outer) {
    auto mismatch = std::mismatch(outer.begin(), outer.end(), inner.begin(),
                                  inner.end());
    return mismatch.first == outer.end();
}

// The start of every job's root: system folders, the node's own folders
// that lie inside them covered, /dev, and mount points for /proc and
// /tmp. A cover stays writable until the job's folder is made (it may
// lie inside one); `covers` lists them, to be made read-only then.
std::vector<MountStep> common_root_steps(const ContainmentSettings& s,
                                         std::vector<std::string>& covers) {
    std::vector<MountStep> steps;
    std::vector<fs::path> bound;
    for (std::string_view name : system_folders) {
        fs::path folder(name);
        std::error_code ec;
        auto status = fs::symlink_status(folder, ec);
        if (ec)
            continue;
        if (fs::is_symlink(status)) {
            steps.push_back(MountStep::symlink(fs::read_symlink(folder, ec),
                                              under_root(folder)));
        } else if (fs::is_directory(status)) {
            steps.push_back(MountStep::directory(under_root(folder)));
            steps.push_back(MountStep::bind(folder, under_root(folder)));
            steps.push_back(MountStep::read_only(under_root(folder),
                                                 locked_flags(folder)));
            bound.push_back(fs::canonical(folder, ec));
        }
    }

    // Outer folders first: what lies inside a covered one is hidden
    // with it, and has no mount point of its own there.
    std::vector<fs::path> hidden;
    for (const auto& path : s.hidden) {
        std::error_code ec;
        auto real = fs::weakly_canonical(path, ec);
        if (!ec)
            hidden.push_back(real);
    }
    std::sort(hidden.begin(), hidden.end());
    std::vector<fs::path> covered;
    for (const auto& real : hidden) {
        auto inside = [&](const std::vector<fs::path>& folders) {
            return std::any_of(folders.begin(), folders.end(),
                               [&](const fs::path& f) {
                                   return is_within(real, f);
                               });
        };
        std::error_code ec;
        if (!inside(bound) || inside(covered) || !fs::exists(real, ec))
            continue;
        if (fs::is_directory(real, ec)) {
            steps.push_back(MountStep::tmpfs(under_root(real),
                                             std::string(cover_options),
                                             cover_flags));
            covers.push_back(under_root(real));
            covered.push_back(real);
        } else {
            steps.push_back(MountStep::bind("/dev/null", under_root(real)));
            steps.push_back(MountStep::read_only(under_root(real), MS_NOSUID));
        }
    }

    steps.push_back(MountStep::directory(under_root("/dev")));
    steps.push_back(MountStep::tmpfs(under_root("/dev"),
                                     std::string(dev_options),
                                     MS_NOSUID | MS_NOEXEC));
    for (std::string_view name : devices) {
        fs::path device = fs::path("/dev") / name;
        steps.push_back(MountStep::file(under_root(device)));
        steps.push_back(MountStep::bind(device, under_root(device)));
    }
    steps.push_back(MountStep::symlink("/proc/self/fd", under_root("/dev/fd")));
    const char* streams[] = {"stdin", "stdout", "stderr"};
    for (int i = 0; i < 3; ++i)
        steps.push_back(
            MountStep::symlink("/proc/self/fd/" + std::to_string(i),
                               under_root(fs::path("/dev") / streams[i])));
    for (const char* point : {"/dev/shm", "/proc", "/tmp"})
        steps.push_back(MountStep::directory(under_root(point)));
    return steps;
}

std::string tmpfs_options(std::uint64_t size_bytes, std::string_view mode) {
    std::string options = "mode=" + std::string(mode);
    if (size_bytes > 0)
        options += ",size=" + std::to_string(size_bytes);
    return options;
}

std::string one_to_one(unsigned id) {
    return std::to_string(id) + " " + std::to_string(id) + " 1";
}

// The probe's throwaway job, run to its end on a loop of its own.
JobEnd run_probe_job(const Containment& containment,
                     const fs::path& work_root, std::string& err) {
    JobEnd end;
    std::string folder = (work_root / "probe-XXXXXX").string();
    if (mkdtemp(folder.data()) == nullptr) {
        end.error = "cannot create a folder under " + work_root.string() +
                    ": " + std::system_category().message(errno);
        return end;
    }
    JobSpec spec;
    spec.working_folder = folder;
    spec.script = spec.working_folder / "probe.sh";
    std::ofstream(spec.script) << probe_script;
    spec.argv = {"/bin/sh", spec.script.string()};
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.limits.memory_bytes = probe_memory_bytes;
    spec.limits.processes = 16;

    asio::io_context io;
    asio::steady_timer timer(io, probe_timeout);
    {
        JobProcess::Handlers handlers;
        handlers.on_output = [&err](JobStream, std::string_view bytes) {
            err.append(bytes.substr(0, 512));
        };
        handlers.on_end = [&](JobEnd e) {
            end = std::move(e);
            timer.cancel();
        };
        JobProcess process(io, spec, containment, std::move(handlers));
        timer.async_wait([&](std::error_code ec) {
            if (!ec)
                process.stop();
        });
        io.run();
    }
    std::error_code ec;
    fs::remove_all(folder, ec);
    return end;
}

} // namespace

Containment::Containment(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

Containment::~Containment() = default;

const std::vector<Layer>& Containment::layers() const {
    return impl_->layers;
}

const std::vector<MissingLayer>& Containment::missing() const {
    return impl_->missing;
}

Containment::Impl::~Impl() {
    if (cgroups)
        cgroup::release(*cgroups);
    if (uid_lock >= 0)
        close(uid_lock);
}

bool Containment::Impl::has(Layer layer) const {
    return std::find(layers.begin(), layers.end(), layer) != layers.end();
}

uid_t Containment::Impl::slot_uid(std::size_t slot) const {
    return static_cast<uid_t>(settings.first_uid + slot);
}

contain::ChildPlan Containment::Impl::plan(const JobSpec& spec,
                                           const cgroup::JobCgroup* cg) const {
    contain::ChildPlan p;
    p.folder = spec.working_folder.string();
    p.staged_script = spec.script.string();

    // limits: each one the job asked for, and never a core dump.
    const auto& l = spec.limits;
    auto limit = [&p](int resource, std::uint64_t soft, std::uint64_t hard) {
        p.limits.push_back({resource, {soft, hard}});
    };
    limit(RLIMIT_CORE, 0, 0);
    if (l.cpu_seconds > 0) // SIGXCPU first, SIGKILL a second later
        limit(RLIMIT_CPU, l.cpu_seconds, l.cpu_seconds + 1);
    // The cgroup bounds what the job really uses; without it, the address
    // space stands in (and fails runtimes that reserve much more than
    // they touch).
    if (l.memory_bytes > 0 && !has(Layer::cgroup))
        limit(RLIMIT_AS, l.memory_bytes, l.memory_bytes);
    if (l.disk_bytes > 0)
        limit(RLIMIT_FSIZE, l.disk_bytes, l.disk_bytes);
    if (l.open_files > 0)
        limit(RLIMIT_NOFILE, l.open_files, l.open_files);
    // Counted per uid: only a uid, or a user namespace, of the job's own.
    if (l.processes > 0 && (has(Layer::uid) || has(Layer::namespaces)))
        limit(RLIMIT_NPROC, l.processes, l.processes);

    uid_t uid = node_uid;
    gid_t gid = node_gid;
    if (has(Layer::uid)) {
        p.set_identity = true;
        uid = p.uid = slot_uid(spec.slot);
        gid = p.gid = static_cast<gid_t>(uid);
    }
    if (cg)
        p.cgroup_join_fds = cg->join_fds();
    if (filter)
        p.filter = filter->fprog();
    if (!has(Layer::namespaces))
        return p;

    p.namespaces = true;
    p.own_user_namespace = !node_is_root;
    p.uid_map = one_to_one(uid);
    p.gid_map = one_to_one(gid);
    p.new_root = std::string(new_root);
    p.old_root = p.new_root + "/" + std::string(old_root_name);
    p.root_options = std::string(root_options);
    p.steps = root_steps;

    // The job's own writable folders, each as large as its disk limit.
    for (const char* shared : {"/dev/shm", "/tmp"})
        p.steps.push_back(MountStep::tmpfs(under_root(shared),
                                           tmpfs_options(l.disk_bytes, "1777"),
                                           MS_NOSUID | MS_NODEV));
    fs::path ancestor = "/";
    for (const auto& part : spec.working_folder.relative_path()) {
        ancestor /= part;
        p.steps.push_back(MountStep::directory(under_root(ancestor)));
    }
    p.steps.push_back(MountStep::tmpfs(
        under_root(spec.working_folder),
        tmpfs_options(l.disk_bytes, "0700") + ",uid=" + std::to_string(uid) +
            ",gid=" + std::to_string(gid),
        MS_NOSUID | MS_NODEV));
    for (const auto& cover : root_covers)
        p.steps.push_back(MountStep::read_only(cover, cover_flags));
    p.script_in_root = under_root(spec.script);
    p.proc_in_root = under_root("/proc");
    return p;
}

std::unique_ptr<Containment> Containment::minimal() {
    auto impl = std::make_unique<Impl>();
    impl->layers = {Layer::limits};
    impl->node_is_root = geteuid() == 0;
    impl->node_uid = geteuid();
    impl->node_gid = getegid();
    return std::unique_ptr<Containment>(new Containment(std::move(impl)));
}

std::unique_ptr<Containment>
Containment::probe(const ContainmentSettings& settings) {
    auto self = minimal();
    Impl& impl = *self->impl_;
    impl.settings = settings;
    auto disabled = [&](Layer layer) {
        return std::find(settings.disabled.begin(), settings.disabled.end(),
                         layer) != settings.disabled.end();
    };
    auto leave_out = [&](Layer layer, std::string why) {
        impl.missing.push_back({layer, std::move(why)});
    };
    if (impl.node_is_root && disabled(Layer::uid))
        throw SettingsError("containment.disable: the node runs as root, "
                            "so the uid layer cannot be disabled: jobs "
                            "would run as root");

    // The floor: a job must run at all.
    std::string output;
    JobEnd end = run_probe_job(*self, settings.work_root, output);
    if (!end.ran || end.exit_code != probe_exit_code)
        throw std::runtime_error("jobs cannot run here: " +
                                 (end.error.empty() ? output : end.error));

    // One more layer at a time, each tried for real.
    for (Layer layer : all_layers) {
        if (layer == Layer::limits)
            continue;
        if (disabled(layer)) {
            leave_out(layer, "disabled in the configuration");
            continue;
        }
        std::string why;
        switch (layer) {
        case Layer::uid:
            if (!impl.node_is_root)
                why = "the node does not run as root";
            else
                impl.uid_lock = slot_uids::claim(
                    static_cast<uid_t>(settings.first_uid), settings.slots);
            break;
        case Layer::namespaces:
            if (impl.node_is_root && !impl.has(Layer::uid))
                why = "as root, a job in namespaces needs the uid layer";
            else
                impl.root_steps = common_root_steps(settings, impl.root_covers);
            impl.new_root = std::string(new_root);
            break;
        case Layer::cgroup:
            impl.cgroups = cgroup::prepare(why);
            break;
        case Layer::seccomp:
            impl.filter = seccomp::build(why);
            break;
        case Layer::limits:
            break;
        }
        if (!why.empty()) {
            leave_out(layer, why);
            continue;
        }

        impl.layers.push_back(layer);
        output.clear();
        end = run_probe_job(*self, settings.work_root, output);
        if (end.ran && end.exit_code == probe_exit_code)
            continue;
        impl.layers.pop_back();
        if (end.error.empty())
            end.error = "the test job exited " + std::to_string(end.exit_code) +
                        ": " + output;
        if (layer == Layer::uid && end.ran)
            end.error += " (a slot's uid must reach " +
                         settings.work_root.string() +
                         ": every folder above it needs o+x)";
        leave_out(layer, end.error);
        if (layer == Layer::cgroup && impl.cgroups) {
            cgroup::release(*impl.cgroups);
            impl.cgroups.reset();
        }
        if (layer == Layer::seccomp)
            impl.filter.reset();
    }
    if (impl.node_is_root && !impl.has(Layer::uid)) {
        std::string why;
        for (const auto& m : impl.missing)
            why = m.layer == Layer::uid ? m.why : why;
        throw std::runtime_error("the node runs as root and jobs would too: "
                                 "the uid layer failed: " + why);
    }
    return self;
}

} // namespace cloudnode::platform
