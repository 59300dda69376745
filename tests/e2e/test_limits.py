#!/usr/bin/python3
"""What connections can make a node hold (proto-spec section 14), over
TLS and over the loopback plaintext listener: clients that pipeline
RESULTs and never read them. Addresses 127.0.0.x stand for distinct
clients. After every test the node is alive, has logged no crash, and
serves a new client.
"""

import socket
import threading
import time
import unittest

import harness
from harness import descriptor, new_job_id

IDLE_TIMEOUT_SECONDS = 4

RESULT_BYTES = 128 * 1024
PIPELINED_RESULTS = 1800
NON_READERS = 4
# The node's memory may grow this much while NON_READERS clients each
# pipeline PIPELINED_RESULTS; unbounded queues took it past 200 MiB.
RSS_GROWTH_LIMIT_KIB = 32 * 1024

ECHO_SCRIPT = b'printf "%s|" "$@"\necho\n'


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


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

    def greeted_after_close(self, tls, source, timeout=5):
        """The greeting a new client from `source` gets once a session
        the test closed has ended at the node."""
        deadline = time.monotonic() + timeout
        while True:
            with self.connect(tls, source) as c:
                if c.greeting.code == 220 or time.monotonic() > deadline:
                    return c.greeting
            time.sleep(0.1)

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


if __name__ == "__main__":
    unittest.main()
