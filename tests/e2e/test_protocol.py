#!/usr/bin/python3
"""Raw protocol lines against a real node, over TLS and over the loopback
plaintext listener: greeting, capabilities, pipelining, a SUBMIT sent one
octet at a time, clients that break off or stall mid-payload, a plaintext
client on the TLS port, and fifty clients at once. After every test the
node is still alive and has logged no crash.
"""

import socket
import ssl
import threading
import time
import unittest

import harness
from harness import descriptor, new_job_id

MAX_JOB_BYTES = 65536
IDLE_TIMEOUT_SECONDS = 4
HANDSHAKE_TIMEOUT_SECONDS = 3
CONCURRENT_CLIENTS = 50
CONCURRENT_DEADLINE_SECONDS = 60

ECHO_SCRIPT = b'printf "%s|" "$@"\necho\n'


class ProtocolTests:
    """The tests; a subclass says whether they speak TLS."""

    tls = None
    limits = {
        "max_job_bytes": MAX_JOB_BYTES,
        "idle_timeout_seconds": IDLE_TIMEOUT_SECONDS,
        "handshake_timeout_seconds": HANDSHAKE_TIMEOUT_SECONDS,
    }

    def connect(self, **kw):
        return self.node.client(self.tls, **kw)

    def job(self, *args):
        return descriptor(args=list(args), reply_to="proto@example.org")

    def assert_no_job(self, job_id):
        with self.connect() as c:
            c.hello()
            reply = c.command("STATUS " + job_id)
        self.assertEqual(reply.code, 550, reply)

    def assert_serves_others(self):
        """A new client gets a whole session: greeting, HELLO, a job."""
        with self.connect() as c:
            self.assertEqual(c.greeting.code, 220)
            c.hello()
            job_id = new_job_id()
            reply = c.submit(job_id, self.job("still", "here"), ECHO_SCRIPT)
            self.assertEqual((reply.code, reply.text),
                             (250, job_id + " accepted"))
            self.assertEqual(c.wait_final(job_id, 20), "done")
            reply, out, _ = c.result(job_id)
            self.assertEqual(out, b"still|here|\n")
            self.assertEqual(c.command("QUIT").code, 221)

    # the session

    def test_greeting(self):
        with self.connect() as c:
            self.assertEqual(c.greeting.code, 220)
            self.assertRegex(c.greeting.text, r"\A\S+ cloudproto/1 ready\Z")

    def test_hello_announces_capabilities(self):
        with self.connect() as c:
            reply = c.command("HELLO probe")
        self.assertEqual(reply.code, 250)
        self.assertRegex(reply.lines[0], r"\A\S+ hello probe\Z")
        keywords = {}
        for line in reply.lines[1:]:
            word, _, params = line.partition(" ")
            self.assertRegex(word, r"\A[A-Z0-9][A-Z0-9-]*\Z", line)
            keywords[word] = params
        self.assertEqual(keywords.get("VERSION"), "1")
        self.assertEqual({"bash", "python"} - set(
            keywords.get("RUNTIMES", "").split()), set())
        self.assertEqual(keywords.get("MAX-JOB-BYTES"), str(MAX_JOB_BYTES))
        self.assertEqual(keywords.get("IDLE-TIMEOUT-SECONDS"),
                         str(IDLE_TIMEOUT_SECONDS))
        self.assertIn("PIPELINING", keywords)

    def test_pipelined_commands_answered_in_order(self):
        unknown = new_job_id()
        with self.connect() as c:
            c.send(b"NOOP\r\nSTATUS " + unknown.encode() + b"\r\n"
                   b"HELLO pipe\r\nNOOP\r\nSTATUS " + unknown.encode() +
                   b"\r\nBOGUS\r\nHELP\r\nQUIT\r\n")
            codes = [c.reply().code for _ in range(8)]
            self.assertEqual(codes, [250, 503, 250, 250, 550, 500, 214, 221])
            self.assertTrue(c.is_closed(), "no close after QUIT")

    def test_replies_before_a_payload_come_while_it_is_awaited(self):
        # A client may wait for the replies to what it sent before a
        # SUBMIT's payload before it sends the rest of that payload.
        job_id = new_job_id()
        d = self.job("late").encode()
        with self.connect() as c:
            c.send(b"HELLO early\r\nNOOP\r\nSUBMIT %s %d %d\r\n"
                   % (job_id.encode(), len(d), len(ECHO_SCRIPT)) + d[:5])
            self.assertEqual([c.reply(timeout=5).code for _ in range(2)],
                             [250, 250])
            c.send(d[5:] + ECHO_SCRIPT)
            reply = c.reply()
            self.assertEqual((reply.code, reply.text),
                             (250, job_id + " accepted"))

    def test_pipelined_submit_status_wait_result(self):
        job_id = new_job_id()
        d = self.job("piped", "a b").encode()
        packet = (b"HELLO pipe\r\n"
                  b"SUBMIT %s %d %d\r\n" % (job_id.encode(), len(d),
                                            len(ECHO_SCRIPT)) +
                  d + ECHO_SCRIPT +
                  b"STATUS %s\r\nWAIT %s 20\r\nRESULT %s\r\nQUIT\r\n"
                  % ((job_id.encode(),) * 3))
        with self.connect() as c:
            c.send(packet)
            self.assertEqual(c.reply().code, 250)
            self.assertEqual(c.reply().text, job_id + " accepted")
            status = c.reply()
            self.assertEqual((status.code, status.lines[0]),
                             (250, "JOB " + job_id))
            wait = c.reply()
            self.assertEqual((wait.code, wait.lines[-1]), (250, "STATE done"))
            result = c.reply()
            self.assertEqual(result.code, 250)
            self.assertEqual(result.payload, b"piped|a b|\n")
            self.assertEqual(c.reply().code, 221)

    def test_submit_sent_one_octet_at_a_time(self):
        job_id = new_job_id()
        d = self.job("byte", "by byte", "é").encode()
        data = (b"HELLO slow\r\nSUBMIT %s %d %d\r\n"
                % (job_id.encode(), len(d), len(ECHO_SCRIPT)) + d +
                ECHO_SCRIPT)
        with self.connect() as c:
            for i in range(len(data)):
                c.send(data[i:i + 1])
            self.assertEqual(c.reply().code, 250)
            reply = c.reply()
            self.assertEqual((reply.code, reply.text),
                             (250, job_id + " accepted"))
            self.assertEqual(c.wait_final(job_id, 20), "done")
            reply, out, err = c.result(job_id)
        self.assertEqual(out, "byte|by byte|é|\n".encode())

    def test_wait_sees_a_change_made_while_it_was_sending(self):
        # The node cannot even read the WAIT while the client reads
        # nothing (eight results of 1 MiB are in the way); the job ends
        # meanwhile. The final line must come as soon as the client
        # reads again, not when the WAIT's seconds run out.
        wait_seconds = 12
        with self.connect() as c:
            c.hello()
            big_id = new_job_id()
            reply = c.submit(big_id, self.job(),
                             b"head -c 1048576 /dev/zero | tr '\\0' a\n")
            self.assertEqual(reply.code, 250, reply)
            self.assertEqual(c.wait_final(big_id, 20), "done")
            slow_id = new_job_id()
            reply = c.submit(slow_id, self.job(), b"sleep 1.5\necho slow\n")
            self.assertEqual(reply.code, 250, reply)

        with self.connect(rcvbuf=65536) as stalled:
            stalled.send(b"HELLO stalled\r\n" +
                         b"RESULT %s\r\n" % big_id.encode() * 8 +
                         b"WAIT %s %d\r\n" % (slow_id.encode(),
                                              wait_seconds))
            with self.connect() as c:
                c.hello()
                self.assertEqual(c.wait_final(slow_id, 20), "done")
            time.sleep(0.2)

            started = time.monotonic()
            self.assertEqual(stalled.reply().code, 250)
            for _ in range(8):
                reply = stalled.reply()
                self.assertEqual(len(reply.payload), 1048576)
            reply = stalled.reply(timeout=wait_seconds + 10)
            waited = time.monotonic() - started
        self.assertEqual((reply.code, reply.lines[-1]), (250, "STATE done"))
        self.assertLess(waited, 5, "the WAIT reply ended only when its %d s"
                        " ran out" % wait_seconds)

    # clients that break off

    def test_disconnect_mid_payload_stores_nothing(self):
        job_id = new_job_id()
        d = self.job("cut").encode()
        cut = r"disconnected reason=payload-cut"
        cuts_before = len(self.node.wait_for_log(cut, count=0))
        with self.connect() as c:
            c.hello()
            c.send(b"SUBMIT %s %d %d\r\n" % (job_id.encode(), len(d),
                                             len(ECHO_SCRIPT)) + d[:10])
            time.sleep(0.2)
        # The node notices the cut (its session ends) before we ask.
        self.node.wait_for_log(cut, count=cuts_before + 1)
        self.assert_no_job(job_id)
        self.assert_serves_others()
        self.assert_no_job(job_id)

    def test_over_long_submit_line_smuggles_no_job(self):
        # The payload of a SUBMIT whose line is too long is itself a
        # whole SUBMIT: were the session to go on after the 500, that
        # inner job would be handed in.
        outer, inner = new_job_id(), new_job_id()
        d = self.job("smuggled").encode()
        smuggled = (b"SUBMIT %s %d %d\r\n" % (inner.encode(), len(d),
                                               len(ECHO_SCRIPT))
                    + d + ECHO_SCRIPT)
        line = b"SUBMIT %s %d %d X=%s\r\n" % (
            outer.encode(), len(d), len(smuggled), b"a" * 1000)
        with self.connect() as c:
            c.hello()
            c.send(line + d + smuggled)
            reply = c.reply()
            self.assertEqual(reply.code, 500, reply)
            self.assertRegex(reply.text, r"line too long")
            self.assertTrue(c.is_closed(), "the session went on after 500")
        self.assert_no_job(inner)
        self.assert_no_job(outer)
        self.assert_serves_others()

    def test_short_payload_then_idle(self):
        job_id = new_job_id()
        d = self.job("short").encode()
        with self.connect() as c:
            c.hello()
            c.send(b"SUBMIT %s %d %d\r\n" % (job_id.encode(), len(d),
                                             len(ECHO_SCRIPT) + 100) +
                   d + ECHO_SCRIPT)
            self.assert_no_job(job_id)
            self.assert_serves_others()

            # Past the idle timeout the node says so and closes.
            reply = c.reply(timeout=IDLE_TIMEOUT_SECONDS + 5)
            self.assertEqual(reply.code, 421, reply)
            self.assertRegex(reply.text, r"idle timeout")
            self.assertTrue(c.is_closed(), "no close after 421")
        self.assert_no_job(job_id)

    def test_idle_client_gets_421_and_close(self):
        with self.connect() as c:
            c.hello()
            c.send(b"NOO")  # the rest of the line never comes
            started = time.monotonic()
            reply = c.reply(timeout=IDLE_TIMEOUT_SECONDS + 5)
            waited = time.monotonic() - started
            self.assertEqual(reply.code, 421, reply)
            self.assertTrue(c.is_closed(), "no close after 421")
        self.assertGreater(waited, IDLE_TIMEOUT_SECONDS - 1)

    # many at once

    def test_fifty_concurrent_clients(self):
        results = [None] * CONCURRENT_CLIENTS
        deadline = time.monotonic() + CONCURRENT_DEADLINE_SECONDS

        def one_client(i):
            try:
                job_id = new_job_id()
                # From five addresses: fifty from one would pass the
                # node's default max_connections_per_address.
                source = "127.0.0.%d" % (50 + i % 5)
                with self.connect(timeout=CONCURRENT_DEADLINE_SECONDS,
                                  source=source) as c:
                    c.hello("client%d" % i)
                    reply = c.submit(job_id, self.job("n%d" % i), ECHO_SCRIPT)
                    if reply.code != 250:
                        results[i] = "SUBMIT: %r" % reply
                        return
                    left = int(deadline - time.monotonic())
                    state = c.wait_final(job_id, max(left, 1))
                    _, out, _ = c.result(job_id)
                    results[i] = (state, out)
            except Exception as e:  # reported below, with its client
                results[i] = "client %d: %r" % (i, e)

        threads = [threading.Thread(target=one_client, args=(i,))
                   for i in range(CONCURRENT_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0) + 5)
        self.assertFalse(any(t.is_alive() for t in threads),
                         "clients still running after %ss"
                         % CONCURRENT_DEADLINE_SECONDS)
        expected = [("done", b"n%d|\n" % i) for i in range(CONCURRENT_CLIENTS)]
        self.assertEqual(results, expected)


class TlsProtocolTest(ProtocolTests, harness.OneNodeTestCase):
    tls = True

    def test_plaintext_client_on_tls_port(self):
        sock = socket.create_connection(("127.0.0.1", self.node.tls_port),
                                        timeout=10)
        try:
            sock.sendall(b"HELLO clear\r\nNOOP\r\n")
            got = b""
            closed = False
            try:
                while not closed:
                    chunk = sock.recv(4096)
                    got += chunk
                    closed = not chunk
            except ConnectionResetError:
                closed = True
            except socket.timeout:
                pass
            self.assertNotIn(b"250", got, "the TLS port answered in clear")
            self.assertTrue(closed, "the node kept the connection open")
        finally:
            sock.close()
        self.assert_serves_others()

    def test_client_that_never_completes_the_handshake(self):
        failed = r"session tls-failed error=\"Connection timed out\""
        before = len(self.node.wait_for_log(failed, count=0))
        sock = socket.create_connection(("127.0.0.1", self.node.tls_port),
                                        timeout=10)
        try:
            started = time.monotonic()
            with self.connect() as other:
                other.hello()
                self.assertEqual(other.command("NOOP").code, 250)

            # Closed at the handshake deadline, without a word.
            sock.settimeout(HANDSHAKE_TIMEOUT_SECONDS + 5)
            try:
                got = sock.recv(4096)
            except ConnectionResetError:
                got = b""
            waited = time.monotonic() - started
        finally:
            sock.close()
        self.assertEqual(got, b"")
        self.assertGreater(waited, HANDSHAKE_TIMEOUT_SECONDS - 0.5)
        self.assertLess(waited, HANDSHAKE_TIMEOUT_SECONDS + 3)
        self.node.wait_for_log(failed, count=before + 1)
        self.assert_serves_others()


class PlainProtocolTest(ProtocolTests, harness.OneNodeTestCase):
    tls = False

    def test_tls_client_on_plain_port(self):
        context = ssl.create_default_context(cafile=self.node.ca)
        with socket.create_connection(("127.0.0.1", self.node.plain_port),
                                      timeout=10) as sock:
            with self.assertRaises((ssl.SSLError, OSError)):
                context.wrap_socket(sock, server_hostname="localhost")
        self.assert_serves_others()


if __name__ == "__main__":
    unittest.main()
