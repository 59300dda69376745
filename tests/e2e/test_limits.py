#!/usr/bin/python3
"""What connections can make a node hold (proto-spec section 14), over
TLS and over the loopback plaintext listener: sessions in all and per
address, refused at once with 421; floods of silent connections that
must not cost the node descriptors; a node out of descriptors that
backs off instead of spinning; clients that pipeline RESULTs and never
read them. Addresses 127.0.0.x stand for distinct clients. After every
test the node is alive, has logged no crash, and serves a new client.
"""

import os
import resource
import shutil
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import descriptor, new_job_id

MAX_CONNECTIONS = 12
PER_ADDRESS = 4
HANDSHAKE_TIMEOUT_SECONDS = 3
IDLE_TIMEOUT_SECONDS = 4
# Over-limit TLS connections the node tells 421 at once (node/server.cpp).
REFUSING_AT_ONCE = 8
REFUSALS_LOGGED_PER_SECOND = 10

FLOOD_CONNECTIONS = 300
RESULT_BYTES = 128 * 1024
PIPELINED_RESULTS = 1800
NON_READERS = 4
# The node's memory may grow this much while NON_READERS clients each
# pipeline PIPELINED_RESULTS; unbounded queues took it past 200 MiB.
RSS_GROWTH_LIMIT_KIB = 32 * 1024

ECHO_SCRIPT = b'printf "%s|" "$@"\necho\n'


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def silent(port, source):
    """A TCP connection that never says a word (no TLS handshake, no
    command)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def closed_within(sock, seconds):
    """Reads and drops until the other end closes; True if it did
    within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:  # reset: closed as well
            return True


class ConnectionLimitsTest(harness.OneNodeTestCase):
    limits = {
        "max_connections": MAX_CONNECTIONS,
        "max_connections_per_address": PER_ADDRESS,
        "handshake_timeout_seconds": HANDSHAKE_TIMEOUT_SECONDS,
        "idle_timeout_seconds": IDLE_TIMEOUT_SECONDS,
    }

    def tearDown(self):
        super().tearDown()
        greeting = self.greeted_after_close(True, "127.0.0.99")
        self.assertEqual(greeting.code, 220, greeting)
        self.assert_serves("127.0.0.99", tls=True)

    def pid(self):
        return self.node.process.pid

    def connect(self, tls, source, **kw):
        return self.node.client(tls, source=source, **kw)

    def port(self, tls):
        return self.node.tls_port if tls else self.node.plain_port

    def assert_serves(self, source, tls):
        """A client from `source` gets a whole session: greeting, HELLO,
        a job and its result."""
        with self.connect(tls, source) as c:
            self.assertEqual(c.greeting.code, 220, c.greeting)
            c.hello()
            job_id = new_job_id()
            d = descriptor(args=["served"], reply_to="limits@example.org")
            reply = c.submit(job_id, d, ECHO_SCRIPT)
            self.assertEqual(reply.code, 250, reply)
            self.assertEqual(c.wait_final(job_id, 20), "done")
            _, out, _ = c.result(job_id)
            self.assertEqual(out, b"served|\n")
            self.assertEqual(c.command("QUIT").code, 221)

    def wait_sessions_gone(self, before, timeout=10):
        """Waits until the node holds no more descriptors than `before`
        (its sessions have ended)."""
        deadline = time.monotonic() + timeout
        while proc_fds(self.pid()) > before:
            if time.monotonic() > deadline:
                self.fail("the node holds %d descriptors, %d before"
                          % (proc_fds(self.pid()), before))
            time.sleep(0.05)

    def greeted_after_close(self, tls, source, timeout=5):
        """The greeting a new client from `source` gets once a session
        the test closed has ended at the node."""
        deadline = time.monotonic() + timeout
        while True:
            with self.connect(tls, source) as c:
                if c.greeting.code == 220 or time.monotonic() > deadline:
                    return c.greeting
            time.sleep(0.1)

    # sessions in all and per address

    def check_per_address(self, tls):
        refused = r"server refused remote=127\.0\.0\.5:\d+ tls=%s " \
                  r"reason=too-many-from-address" % ("yes" if tls else "no")
        before = len(self.node.wait_for_log(refused, count=0))
        held = [self.connect(tls, "127.0.0.5") for _ in range(PER_ADDRESS)]
        try:
            for c in held:
                self.assertEqual(c.greeting.code, 220, c.greeting)
            with self.connect(tls, "127.0.0.5") as extra:
                self.assertEqual(
                    (extra.greeting.code, extra.greeting.text),
                    (421, "e2e too many connections from your address"))
                self.assertTrue(extra.is_closed(), "no close after 421")
            self.node.wait_for_log(refused, count=before + 1)
            # Another address is not locked out.
            self.assert_serves("127.0.0.9", tls)
        finally:
            held.pop().close()
            for c in held:
                c.close()
        self.assertEqual(self.greeted_after_close(tls, "127.0.0.5").code, 220)

    def test_per_address_limit_tls(self):
        self.check_per_address(tls=True)

    def test_per_address_limit_plain(self):
        self.check_per_address(tls=False)

    def check_max_connections(self, tls):
        sources = ["127.0.0.%d" % (11 + i // PER_ADDRESS)
                   for i in range(MAX_CONNECTIONS)]
        held = [self.connect(tls, s) for s in sources]
        try:
            for c in held:
                self.assertEqual(c.greeting.code, 220, c.greeting)
            with self.connect(tls, "127.0.0.20") as extra:
                self.assertEqual((extra.greeting.code, extra.greeting.text),
                                 (421, "e2e too many connections"))
                self.assertTrue(extra.is_closed(), "no close after 421")
            # One leaves; the next one is taken.
            held.pop(0).close()
            greeting = self.greeted_after_close(tls, "127.0.0.20")
            self.assertEqual(greeting.code, 220, greeting)
        finally:
            for c in held:
                c.close()

    def test_max_connections_tls(self):
        self.check_max_connections(tls=True)

    def test_max_connections_plain(self):
        self.check_max_connections(tls=False)

    # floods

    def check_flood(self, tls):
        """FLOOD_CONNECTIONS silent connections from one address: the
        node holds PER_ADDRESS sessions and a few refusals, sheds the
        rest at once, logs a few lines, and serves another address."""
        time.sleep(1.1)  # the log's budget of refusals is per second
        fds_before = proc_fds(self.pid())
        log_before = len(self.node.log_since_start().splitlines())
        started = time.monotonic()
        flood = []
        try:
            for _ in range(FLOOD_CONNECTIONS):
                flood.append(silent(self.port(tls), "127.0.0.6"))
            time.sleep(0.3)
            held = proc_fds(self.pid()) - fds_before
            self.assert_serves("127.0.0.7", tls)
            held = max(held, proc_fds(self.pid()) - fds_before)
            flooded = time.monotonic() - started
        finally:
            for s in flood:
                s.close()
        refusing = REFUSING_AT_ONCE if tls else 0
        self.assertLessEqual(held, PER_ADDRESS + refusing + 4,
                             "descriptors held by %d silent connections"
                             % FLOOD_CONNECTIONS)
        lines = self.node.log_since_start().splitlines()[log_before:]
        refused = [l for l in lines if " server refused " in l]
        self.assertGreaterEqual(len(refused), 1)
        self.assertLessEqual(len(refused),
                             REFUSALS_LOGGED_PER_SECOND * (flooded + 2),
                             refused)
        self.wait_sessions_gone(fds_before)

    def test_flood_of_silent_tls_connections(self):
        self.check_flood(tls=True)

    def test_flood_of_silent_plain_connections(self):
        self.check_flood(tls=False)

    def test_out_of_descriptors(self):
        """The node may open only a few more descriptors; a flood from
        many addresses runs it out. It backs off (one accept-failed
        line, not one per try) and serves again once the flood ends."""
        pid = self.pid()
        fds_before = proc_fds(pid)
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        failed = r"server accept-failed "
        failed_before = len(self.node.wait_for_log(failed, count=0))
        flood = []
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (fds_before + 16, hard))
        try:
            for i in range(60):
                source = "127.0.0.%d" % (100 + i // PER_ADDRESS)
                flood.append(silent(self.node.tls_port, source))
            self.node.wait_for_log(failed, count=failed_before + 1)
            time.sleep(2)
            self.assertLessEqual(proc_fds(pid), fds_before + 16)
        finally:
            for s in flood:
                s.close()
            flood = []
        try:
            self.wait_sessions_gone(fds_before, timeout=15)
            self.assert_serves("127.0.0.8", tls=True)
            self.assert_serves("127.0.0.8", tls=False)
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        found = len(self.node.wait_for_log(failed, count=0))
        self.assertEqual(found - failed_before, 1,
                         "one accept-failed line per episode")
        # The episode ends once accepting has worked for a while.
        time.sleep(2.1)
        with self.connect(False, "127.0.0.8") as c:
            self.assertEqual(c.greeting.code, 220)
        self.node.wait_for_log(r"server accept-resumed failures=\d+")

    # clients that do not read

    def test_clients_that_never_read_their_results(self):
        """NON_READERS clients pipeline PIPELINED_RESULTS RESULTs of a
        RESULT_BYTES output and read nothing: the node stops reading
        them once a reply waits, its memory stays put, others are served,
        and each is closed once the idle timeout has passed."""
        with self.connect(True, "127.0.0.40") as c:
            c.hello()
            job_id = new_job_id()
            script = b"head -c %d /dev/zero | tr '\\0' a\n" % RESULT_BYTES
            reply = c.submit(job_id, descriptor(reply_to="r@example.org"),
                             script)
            self.assertEqual(reply.code, 250, reply)
            self.assertEqual(c.wait_final(job_id, 20), "done")

        pid = self.pid()
        cut = r"disconnected reason=send-timeout"
        cuts_before = len(self.node.wait_for_log(cut, count=0))
        rss_before = vm_rss_kib(pid)
        burst = (b"HELLO reads-nothing\r\n" +
                 b"RESULT %s\r\n" % job_id.encode() * PIPELINED_RESULTS)
        readers = [self.connect(i % 2 == 0, "127.0.0.41", rcvbuf=4096)
                   for i in range(NON_READERS)]
        senders = [threading.Thread(target=self.send_quietly,
                                    args=(c, burst)) for c in readers]
        try:
            started = time.monotonic()
            for t in senders:
                t.start()
            peak = rss_before
            while time.monotonic() - started < IDLE_TIMEOUT_SECONDS - 1:
                peak = max(peak, vm_rss_kib(pid))
                time.sleep(0.05)
            self.assert_serves("127.0.0.42", tls=True)
            peak = max(peak, vm_rss_kib(pid))
            self.assertLess(peak - rss_before, RSS_GROWTH_LIMIT_KIB,
                            "VmRSS went from %d to %d KiB"
                            % (rss_before, peak))

            # Closed by the node while still reading nothing; what it
            # had sent is read only then.
            self.node.wait_for_log(cut, count=cuts_before + NON_READERS,
                                   timeout=IDLE_TIMEOUT_SECONDS + 10)
            for c in readers:
                self.assertTrue(closed_within(c.sock, 10),
                                "a client that reads nothing kept its "
                                "session")
        finally:
            for c in readers:
                c.close()
            for t in senders:
                t.join(10)

    @staticmethod
    def send_quietly(client, data):
        try:
            client.send(data)
        except OSError:
            pass  # closed by the node: what the test waits for


@unittest.skipUnless(shutil.which("prlimit"), "no prlimit (util-linux)")
class DescriptorLimitTest(harness.NodeTestCase):
    """At start-up the node raises its soft limit of open descriptors to
    the hard one, and does not start when max_connections cannot fit."""

    def run_node(self, nofile, limits):
        """(exit status or None if it started, its stderr)."""
        node = harness.Node(limits=limits)
        self.addCleanup(node.close)
        command = ["prlimit", "--nofile=%s" % nofile, harness.NODE_BINARY,
                   "--config", node.config_path]
        with open(node.log_path, "wb") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log,
                                       cwd=node.folder)
        try:
            deadline = time.monotonic() + harness.START_TIMEOUT_SECONDS
            while process.poll() is None and time.monotonic() < deadline:
                if harness.STARTED.search(node.log_text()):
                    return None, node.log_text()
                time.sleep(0.05)
            return process.poll(), node.log_text()
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(harness.STOP_GRACE_SECONDS)

    def test_too_many_connections_for_the_hard_limit(self):
        status, log = self.run_node("200:200", {"max_connections": 256})
        self.assertEqual(status, 2, log)
        self.assertRegex(log, r"cloud-node: cannot start: "
                              r"limits\.max_connections = 256 .* needs \d+ "
                              r"open descriptors, and this process may open "
                              r"200 ")

    def test_soft_limit_raised_to_the_hard_one(self):
        status, log = self.run_node("100:4096", {"max_connections": 256})
        self.assertIsNone(status, log)
        self.assertRegex(log, r" server descriptors limit=4096 needed=\d+")

    def test_connections_that_fit_start(self):
        status, log = self.run_node("200:200", {"max_connections": 32})
        self.assertIsNone(status, log)
        self.assertRegex(log, r" server descriptors limit=200 needed=\d+")


if __name__ == "__main__":
    unittest.main()
