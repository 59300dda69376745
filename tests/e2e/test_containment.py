#!/usr/bin/python3
"""Containment (proto-spec 11): hostile scripts against real nodes, at
every level of containment the machine gives, the full one and each
lower one forced with [containment] disable, and a node run as an
ordinary user. Each script is one the issue names: a fork bomb, a job
that fills memory, one that writes endlessly to stdout, one that writes
a huge file, one that leaves detached children that ignore SIGTERM, one
that reads the node's private key and spool, one that opens a network
connection, one that sleeps past its timeout, one that reads stdin.
After each, the node is alive and the next job runs as if nothing had
happened; what a level promises (spec 11.2) is checked at that level.

Run as root (as CI does); the levels that need root are skipped
otherwise, and so is the ordinary user's node when there is no such
user to become.
"""

import os
import re
import shutil
import subprocess
import time
import unittest

import harness
from harness import descriptor, new_job_id

MAX_PROCESSES = 32
MAX_MEMORY_BYTES = 256 * 1024 * 1024
MAX_DISK_BYTES = 16 * 1024 * 1024
MAX_OUTPUT_BYTES = 64 * 1024
JOB_TIMEOUT_SECONDS = 4
# A job that must end at its timeout: the timeout, with room to spare.
TIMEOUT_SECONDS_AT_MOST = 8
# A job that prints a line, after a hostile one.
NEXT_JOB_SECONDS_AT_MOST = 3
NOBODY = (65534, 65534)

LIMITS = {
    "slots": 2,
    "max_processes": MAX_PROCESSES,
    "max_memory_bytes": MAX_MEMORY_BYTES,
    "max_disk_bytes": MAX_DISK_BYTES,
    "max_output_bytes": MAX_OUTPUT_BYTES,
    "default_timeout_seconds": JOB_TIMEOUT_SECONDS,
}

# Its failed forks show on its standard output.
FORK_BOMB = b"exec 2>&1\nbomb() { bomb | bomb & }; bomb\nsleep 10\n"
FORK_REFUSED = rb"fork: .*Resource temporarily unavailable"
# Forks until the kernel says no; the job's processes, counted whole.
COUNT_FORKS = (b"import os, time\n"
               b"n = 1\n"
               b"try:\n"
               b"    while n < 1000:\n"
               b"        if os.fork() == 0:\n"
               b"            time.sleep(30)\n"
               b"            os._exit(0)\n"
               b"        n += 1\n"
               b"except OSError as e:\n"
               b"    print('refused at', n, type(e).__name__)\n")
MEMORY_HOG = (b"chunks = []\n"
              b"while True:\n"
              b"    chunks.append(bytearray(8 * 1024 * 1024))\n")
ENDLESS_STDOUT = b"yes cloudproto\n"
HUGE_FILE = (b"head -c 1G /dev/zero > big\n"
             b"echo \"head: $?\"\n"
             b"stat -c 'size: %s' big\n")
# Children in a new session, double forked, deaf to SIGTERM, each with
# the tag in its command line; the job itself ends at once.
RUNAWAYS = b"""\
trap '' TERM
(trap '' TERM; exec -a "$1-child" sleep 60) &
setsid bash -c '(trap "" TERM; exec -a "$0-detached" sleep 60) & exit 0' "$1"
echo left
"""
RUNAWAYS_PAST_TIMEOUT = RUNAWAYS + b"sleep 60\n"
# A job as the node's user may kill its shepherd: level 1 only.
KILL_SHEPHERD = b"""\
setsid bash -c '(trap "" TERM; exec -a "$0" sleep 30) &' "$1"
echo started
kill -9 $PPID 2>/dev/null
sleep 30
"""
# Leaves files, a folder it cannot enter, a link to a file of the
# test's, and a System V shared memory segment where any uid may.
LEAVE_SHARED = b"""\
echo x > "/tmp/$1-file"
mkdir -p "/var/tmp/$1-dir/deep" && echo y > "/var/tmp/$1-dir/deep/f"
chmod 000 "/var/tmp/$1-dir/deep" "/var/tmp/$1-dir"
echo z > "/dev/shm/$1-shm"
ln -s "$2" "/tmp/$1-link"
ipcmk -M 4096 > /dev/null
echo left
"""
READ_SECRETS = b"""\
cat "$1" > /dev/null 2>&1 && echo "key: read" || echo "key: refused"
ls "$2" > /dev/null 2>&1 && echo "spool: listed" || echo "spool: refused"
"""
CONNECT = (b"import socket, sys\n"
           b"try:\n"
           b"    socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2)\n"
           b"    print('connected')\n"
           b"except OSError as e:\n"
           b"    print('refused:', e.__class__.__name__)\n")
SLEEPER = b"sleep 60\n"
READ_STDIN = b"cat\necho \"cat: $?\"\n"
SHOW_LIMITS = b"echo \"processes $(ulimit -u) files $(ulimit -n)\"\n"


def shared_memory_of(uids):
    """Ids of System V shared memory segments owned by one of `uids`."""
    with open("/proc/sysvipc/shm") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return [row[1] for row in rows if int(row[7]) in uids]


class ContainmentTests:
    """The tests; a subclass says which layers are off, who runs the node
    and which level that must give."""

    disabled = []
    run_as = None
    level = None

    @classmethod
    def setUpClass(cls):
        cls.node = harness.Node(limits=dict(LIMITS), run_as=cls.run_as,
                                containment={"disable": cls.disabled})
        cls.nodes = (cls.node,)
        cls.node.start()

    @classmethod
    def tearDownClass(cls):
        cls.node.close()

    def tearDown(self):
        self.assert_node_healthy(self.node)

    # helpers

    def run_job(self, script, runtime="bash", args=None, extra=""):
        """A job to its end with cloud-submit --wait: (code, stdout,
        report)."""
        job_id = new_job_id()
        desc = descriptor(runtime, args=args, extra=extra,
                          reply_to="contained@example.org")
        code, out, err = self.node.submit(script, desc, "--wait", "--quiet",
                                          "--job-id", job_id)
        with self.node.tls_client() as c:
            c.hello()
            report = c.command("STATUS " + job_id).fields()
        self.assertIn(report.get("STATE"), ("done", "failed"), report)
        return code, out, report

    def assert_next_job_runs(self):
        started = time.monotonic()
        code, out, report = self.run_job(b"echo still fine\n")
        self.assertEqual((code, out), (0, b"still fine\n"), report)
        self.assertLess(time.monotonic() - started, NEXT_JOB_SECONDS_AT_MOST)

    def layers(self):
        return set(self.announced().split()[1:])

    def assert_gone(self, tag):
        deadline = time.monotonic() + 3
        while harness.processes_with(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(harness.processes_with(tag), [],
                         "processes of the job outlived it")

    def slot_uids(self):
        first = self.node.containment["first_uid"]
        return range(first, first + LIMITS["slots"])

    def announced(self):
        with self.node.tls_client() as c:
            reply = c.command("HELLO probe")
        for line in reply.lines[1:]:
            if line.startswith("CONTAINMENT "):
                return line[len("CONTAINMENT "):]
        self.fail("no CONTAINMENT in HELLO: %r" % reply)

    # what is announced and recorded

    def test_level_is_announced_logged_and_recorded(self):
        announced = self.announced()
        self.assertEqual(announced.split()[0], str(self.level), announced)
        self.assertRegex(self.node.log_text(),
                         r"containment ready level=%d " % self.level)
        _, _, report = self.run_job(b"true\n")
        self.assertEqual(report.get("CONTAINMENT"), announced)
        with open(self.node.mail_path(report["JOB"]), "rb") as f:
            self.assertIn(b"level " + str(self.level).encode(), f.read())

    def test_limits_are_the_descriptor_lowered_to_the_maximum(self):
        if not {"uid", "namespaces"} & set(self.announced().split()[1:]):
            self.skipTest("without a uid or a user namespace of its own, "
                          "a job gets no process limit")
        _, out, _ = self.run_job(SHOW_LIMITS,
                                 extra="processes = 5\nopen_files = 99999")
        self.assertEqual(out, b"processes 5 files 1024\n")

    # the hostile scripts

    def test_fork_bomb(self):
        # Only a uid, a user namespace or a cgroup of the job's own can
        # count its processes; without one a bomb would reach the machine.
        # The layers the node really has decide, not the level expected.
        counted_by = {"uid", "namespaces", "cgroup"}
        if not counted_by & self.layers():
            self.skipTest("no layer counts a job's processes here")
        started = time.monotonic()
        code, out, report = self.run_job(FORK_BOMB)
        self.assertLess(time.monotonic() - started, TIMEOUT_SECONDS_AT_MOST)
        self.assertEqual(report.get("OUTCOME"), "timeout", report)
        # The bomb met the limit: the kernel refused it forks.
        self.assertRegex(out, FORK_REFUSED)
        self.assert_next_job_runs()

    def test_process_limit_counts_the_whole_job(self):
        if not {"uid", "namespaces", "cgroup"} & self.layers():
            self.skipTest("no layer counts a job's processes here")
        _, out, report = self.run_job(COUNT_FORKS, runtime="python")
        found = re.match(rb"refused at (\d+) BlockingIOError\n$", out)
        self.assertTrue(found, (out, report))
        self.assertLessEqual(int(found.group(1)), MAX_PROCESSES)
        self.assert_next_job_runs()

    def test_memory_hog(self):
        code, _, report = self.run_job(MEMORY_HOG, runtime="python")
        self.assertNotEqual(code, 0, report)
        if "cgroup" in self.announced().split():
            # The cgroup's own limit: the kernel kills the job.
            self.assertEqual((report.get("SIGNAL"), report.get("LIMIT-HIT")),
                             ("9", "memory"), report)
        self.assert_next_job_runs()

    def test_endless_stdout(self):
        code, out, report = self.run_job(ENDLESS_STDOUT)
        self.assertEqual(report.get("OUTCOME"), "timeout", report)
        self.assertEqual(len(out), MAX_OUTPUT_BYTES)
        self.assertEqual(report.get("STDOUT-TRUNCATED"), "yes")
        self.assertGreater(int(report["STDOUT-BYTES"]), MAX_OUTPUT_BYTES)
        self.assert_next_job_runs()

    def test_huge_file(self):
        code, out, report = self.run_job(HUGE_FILE)
        size = int(re.search(rb"size: (\d+)", out).group(1))
        self.assertLessEqual(size, MAX_DISK_BYTES, out)
        self.assertNotRegex(out, rb"head: 0\b")
        self.assert_next_job_runs()

    def test_detached_children_that_ignore_sigterm(self):
        tag = "e2e-contained-" + new_job_id()
        self.addCleanup(harness.kill_processes_with, tag)
        code, out, report = self.run_job(RUNAWAYS, args=[tag])
        self.assertEqual((code, out), (0, b"left\n"), report)
        self.assert_gone(tag)
        self.assert_next_job_runs()

    def test_detached_children_at_timeout(self):
        tag = "e2e-contained-" + new_job_id()
        self.addCleanup(harness.kill_processes_with, tag)
        started = time.monotonic()
        _, out, report = self.run_job(RUNAWAYS_PAST_TIMEOUT, args=[tag],
                                      extra="timeout_seconds = 1")
        self.assertLess(time.monotonic() - started, TIMEOUT_SECONDS_AT_MOST)
        self.assertEqual((out, report.get("OUTCOME")), (b"left\n", "timeout"),
                         report)
        self.assert_gone(tag)
        self.assert_next_job_runs()

    def test_job_that_kills_its_shepherd(self):
        tag = "e2e-contained-" + new_job_id()
        self.addCleanup(harness.kill_processes_with, tag)
        started = time.monotonic()
        _, out, report = self.run_job(KILL_SHEPHERD, args=[tag],
                                      extra="timeout_seconds = 2")
        self.assertLess(time.monotonic() - started, TIMEOUT_SECONDS_AT_MOST)
        self.assertEqual(out, b"started\n", report)
        if self.level == 1:
            # It could: the job ends at once, without a report.
            self.assertEqual(report.get("STATE"), "failed", report)
        else:
            self.assertEqual(report.get("OUTCOME"), "timeout", report)
        self.assert_gone(tag)
        self.assert_next_job_runs()

    def test_shared_folders_are_left_clean(self):
        if self.level < 2:
            self.skipTest("level 1 shares the node's uid and folders")
        tag = "e2e-contained-" + new_job_id()
        kept = self.node.file(tag + "-kept", "the test's own\n")
        paths = ["/tmp/%s-file" % tag, "/tmp/%s-link" % tag,
                 "/var/tmp/%s-dir" % tag, "/dev/shm/%s-shm" % tag]
        self.addCleanup(lambda: [subprocess.run(["rm", "-rf", p])
                                 for p in paths])
        code, out, report = self.run_job(LEAVE_SHARED, args=[tag, kept])
        self.assertEqual((code, out), (0, b"left\n"), report)
        self.assertEqual([p for p in paths if os.path.lexists(p)], [])
        with open(kept) as f:
            self.assertEqual(f.read(), "the test's own\n")
        self.assertEqual(shared_memory_of(self.slot_uids()), [])

    def test_node_key_and_spool(self):
        if int(self.announced().split()[0]) < 2:
            self.skipTest("level 1 promises nothing about the node's files")
        key = os.path.join(self.node.certs, self.node.name + ".key")
        _, out, report = self.run_job(READ_SECRETS,
                                      args=[key, self.node.spool_dir])
        self.assertEqual(out, b"key: refused\nspool: refused\n", report)

    def test_network_connection(self):
        _, out, report = self.run_job(
            CONNECT, runtime="python", args=[str(self.node.tls_port)])
        # Refused by the job's own network namespace, or by seccomp.
        if {"namespaces", "seccomp"} & set(self.announced().split()[1:]):
            self.assertRegex(out, rb"^refused: ", report)
        else:
            self.assertEqual(out, b"connected\n", report)

    def test_sleep_past_timeout(self):
        started = time.monotonic()
        code, _, report = self.run_job(SLEEPER,
                                       extra="timeout_seconds = 1")
        self.assertLess(time.monotonic() - started, TIMEOUT_SECONDS_AT_MOST)
        self.assertEqual((code, report.get("OUTCOME")), (124, "timeout"))
        self.assertLess(int(report["DURATION-MS"]), 3000, report)

    def test_reading_stdin_ends_at_once(self):
        code, out, report = self.run_job(READ_STDIN)
        self.assertEqual((code, out), (0, b"cat: 0\n"), report)


@unittest.skipUnless(os.geteuid() == 0, "needs root")
class RequiredLevel(harness.NodeTestCase):
    """An operator's minimum level: the node refuses to start below it."""

    def test_node_below_the_required_level_does_not_start(self):
        node = harness.Node(containment={"require_level": 4,
                                         "disable": ["seccomp"]})
        self.addCleanup(node.close)
        with self.assertRaises(harness.NodeError):
            node.start()
        self.assertRegex(node.log_text(),
                         r"containment level 3 is below the required 4")
        self.assertRegex(node.log_text(), r"layer-missing layer=seccomp "
                                          r"why=\"disabled in the configuration")

    def test_node_at_the_required_level_starts(self):
        node = harness.Node(containment={"require_level": 1})
        self.addCleanup(node.close)
        node.start()
        self.assertTrue(node.is_alive())


def needs_root(cls):
    return unittest.skipUnless(os.geteuid() == 0, "needs root")(cls)


@needs_root
class StartUpChecks(harness.NodeTestCase):
    """What a node run as root refuses, so that no job runs as root and
    no two nodes, or a node and a user, share a uid."""

    def assert_refused(self, node, pattern):
        self.addCleanup(node.close)
        with self.assertRaises(harness.NodeError):
            node.start()
        self.assertRegex(node.log_text(), pattern)

    def test_root_cannot_disable_the_uid_layer(self):
        node = harness.Node(containment={"disable": ["uid"]})
        self.assert_refused(node, r"configuration error: .*: "
                                  r"containment.disable: the node runs as "
                                  r"root, so the uid layer cannot be "
                                  r"disabled")

    def test_two_nodes_cannot_share_a_slot_uid(self):
        first = harness.Node()
        self.addCleanup(first.close)
        first.start()
        # The second's range starts inside the first's.
        second = harness.Node(containment={
            "first_uid": first.containment["first_uid"] + 3})
        self.assert_refused(second, r"containment.first_uid: uids \d+ to "
                                    r"\d+ are held by another running node")
        self.assertTrue(first.is_alive())
        first.stop()
        second.start()  # the first one's hold ends with it

    def test_slot_uids_of_a_user_are_refused(self):
        node = harness.Node(containment={"first_uid": NOBODY[0] - 1})
        self.assert_refused(node, r"containment.first_uid: uid %d is user "
                                  r"\w+'s" % NOBODY[0])

    def test_slot_uids_that_run_a_process_are_refused(self):
        first_uid = harness.own_uid_range()
        squatter = subprocess.Popen(
            ["setpriv", "--reuid=%d" % (first_uid + 2),
             "--regid=%d" % (first_uid + 2), "--clear-groups", "sleep", "60"])
        self.addCleanup(squatter.wait)
        self.addCleanup(squatter.kill)
        node = harness.Node(containment={"first_uid": first_uid})
        self.assert_refused(node, r"containment.first_uid: process %d runs "
                                  r"as one of the uids" % squatter.pid)

    def test_a_configuration_others_may_read_is_warned_of(self):
        node = harness.Node()
        self.addCleanup(node.close)
        node.start()
        self.assertNotRegex(node.log_text(), r"secret-readable")
        node.stop()
        os.chmod(node.config_path, 0o644)
        node.start()
        self.assertRegex(node.log_since_start(),
                         r"containment secret-readable key=configuration ")


@needs_root
class FullContainment(ContainmentTests, harness.NodeTestCase):
    level = 4


@needs_root
class NamespacesWithoutCgroupOrSeccomp(ContainmentTests,
                                       harness.NodeTestCase):
    disabled = ["cgroup", "seccomp"]
    level = 3


@needs_root
class UidCgroupAndSeccompWithoutNamespaces(ContainmentTests,
                                           harness.NodeTestCase):
    disabled = ["namespaces"]
    level = 2


@needs_root
class UidOnly(ContainmentTests, harness.NodeTestCase):
    disabled = ["namespaces", "cgroup", "seccomp"]
    level = 2


@needs_root
class LimitsOnly(ContainmentTests, harness.NodeTestCase):
    """Level 1 alone. A node run as root never goes below the uid layer,
    so this is an ordinary user's node with every other layer off."""
    run_as = NOBODY
    disabled = ["namespaces", "seccomp"]
    level = 1


@needs_root
class OrdinaryUser(ContainmentTests, harness.NodeTestCase):
    """A node run by an ordinary user: no uid, no cgroup, but user
    namespaces (which this machine allows) give it namespaces."""
    run_as = NOBODY
    level = 3


@needs_root
class OrdinaryUserWithoutUserNamespaces(ContainmentTests,
                                        harness.NodeTestCase):
    """An ordinary user's node on a machine without user namespaces (so
    without the namespaces layer): level 1, with seccomp."""
    run_as = NOBODY
    disabled = ["namespaces"]
    level = 1


@needs_root
class NodeInSystemFolder(harness.NodeTestCase):
    """A node whose folders, key and configuration lie inside a folder
    that jobs see (/usr/local, under /usr): the namespaces layer covers
    them, and the job's own folder is made inside the cover."""

    PARENT = "/usr/local"

    @classmethod
    def setUpClass(cls):
        cls.node = harness.Node(parent=cls.PARENT, own_certs=True)
        cls.nodes = (cls.node,)
        cls.key = os.path.join(cls.node.certs, cls.node.name + ".key")
        # Readable by anyone: only the cover keeps a job from them.
        os.chmod(cls.key, 0o644)
        os.chmod(cls.node.config_path, 0o644)
        cls.node.start()

    @classmethod
    def tearDownClass(cls):
        cls.node.close()

    def test_full_level_and_the_job_runs_in_its_folder(self):
        self.assertNotRegex(self.node.log_text(),
                            r"layer-missing layer=namespaces")
        self.assertRegex(self.node.log_text(), r"containment ready level=4 ")
        code, out, err = self.node.submit(
            b"pwd; echo mine > here; cat here\n", descriptor("bash"),
            "--wait", "--quiet")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, rb"^%s/job-[^\n]*\nmine\n$"
                         % re.escape(self.node.work_dir.encode()))

    def test_node_files_are_hidden(self):
        script = (b'echo "key: $(cat "$1" 2>&1)"\n'
                  b'echo "configuration: $(cat "$2" 2>&1)"\n'
                  b'echo "work: $(ls -A "$3" | wc -l)"\n'
                  b'echo "spool: $(ls -A "$4" 2>&1 | wc -l)"\n')
        code, out, err = self.node.submit(
            script,
            descriptor("bash", args=[self.key, self.node.config_path,
                                     self.node.work_dir,
                                     self.node.spool_dir]),
            "--wait", "--quiet")
        # Empty files, the job's own folder alone, an empty folder.
        self.assertEqual(out, b"key: \nconfiguration: \nwork: 1\n"
                              b"spool: 0\n", err)


if __name__ == "__main__":
    unittest.main()
