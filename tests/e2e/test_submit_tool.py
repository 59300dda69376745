#!/usr/bin/python3
"""cloud-submit facing what it should not trust: a directory given as a
file, a node that announces more output than it may hold, a node whose
replies carry terminal control octets, failures worth a retry and
failures that are not, and a job's stderr that ends mid-line.

Most tests talk to a fake node: a few lines of Python on a plaintext
loopback port that greets, announces its capabilities and answers with
what the test scripts, hostile lines included. The rest use a real node.
"""

import os
import re
import resource
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import descriptor, new_job_id

# A refusal or a failure that is not retried is over within a second;
# the bound leaves room for a loaded machine.
PROMPT_SECONDS = 5

# cloud-submit runs under this address-space limit where a test checks
# that it does not believe an announced size: enough for the tool
# itself, far less than the sizes announced.
ADDRESS_SPACE_BYTES = 512 * 1024 * 1024

GIB = 1024 * 1024 * 1024


def is_sanitized(binary):
    """Whether `binary` runs under AddressSanitizer (CLOUDPROTO_SANITIZE),
    whose shadow memory cannot fit in an address-space limit."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def run_submit(*args, node=None, address_space=None,
               timeout=harness.SUBMIT_TIMEOUT_SECONDS):
    """Runs cloud-submit against a fake node's plaintext port (`node`);
    (exit code, stdout bytes, stderr bytes, seconds taken)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CLOUD_NODE", "CLOUD_CA")}
    where = ["--plain", "--node", "127.0.0.1:%d" % node.port] if node else []
    if address_space and is_sanitized(harness.SUBMIT_BINARY):
        # ASan's allocator refuses an allocation that large instead (and
        # reports it, which fails the run).
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + (
            ":max_allocation_size_mb=%d" % (address_space >> 20))
        address_space = None

    def limit_memory():
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS,
                               (address_space, address_space))

    command = [harness.SUBMIT_BINARY] + where + list(args)
    started = time.monotonic()
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, timeout=timeout,
                              preexec_fn=limit_memory)
    except subprocess.TimeoutExpired as e:
        raise harness.SubmitHung("cloud-submit still running after %ss: %s"
                                 "\n  stderr: %r" % (timeout, command,
                                                     e.stderr)) from None
    return (done.returncode, done.stdout, done.stderr,
            time.monotonic() - started)


def report_lines(job_id, state="done", out=b"", err=b"", error=None):
    """The fields of a job report, as reply texts (bytes)."""
    lines = [b"JOB " + job_id.encode(), b"STATE " + state.encode(),
             b"RUNTIME bash", b"NODE fake"]
    if state == "done":
        lines += [b"OUTCOME exited", b"EXIT-CODE 0", b"DURATION-MS 5",
                  b"STDOUT-BYTES %d" % len(out),
                  b"STDERR-BYTES %d" % len(err)]
    if error is not None:
        lines.append(b"ERROR " + error)
    return lines


def reply(code, *texts):
    """A reply of one or more lines; texts are bytes, sent as they are."""
    out = b""
    for i, text in enumerate(texts):
        sep = b" " if i + 1 == len(texts) else b"-"
        out += b"%d" % code + sep + text + b"\r\n"
    return out


# --- the fake node --------------------------------------------------------

class Last(bytes):
    """Reply octets after which the fake node closes the connection."""

CAPABILITIES = [
    ("VERSION", "1"), ("RUNTIMES", "bash"), ("MAX-JOB-BYTES", "1048576"),
    ("MAX-OUTPUT-BYTES", "1048576"), ("DEFAULT-TIMEOUT-SECONDS", "60"),
    ("MAX-TIMEOUT-SECONDS", "3600"), ("IDLE-TIMEOUT-SECONDS", "300"),
    ("WAIT", ""), ("PIPELINING", ""),
]


class FakeNode:
    """A node on a plaintext loopback port that speaks just enough of the
    protocol: it greets, answers HELLO with its capabilities (`caps`
    replaces or removes entries: {keyword: value or None}), QUIT with
    221, and every other command with what `answer(node, line,
    session)` returns: reply bytes, Last(bytes) to close after them, or
    None to close at once.
    It reads a SUBMIT's payload first. Every command is recorded."""

    def __init__(self, answer=None, caps=None,
                 greeting=b"220 fake cloudproto/1 ready\r\n"):
        self.answer = answer or FakeNode.accept_jobs
        self.greeting = greeting
        caps = caps or {}
        self.caps = [(k, caps.get(k, v)) for k, v in CAPABILITIES
                     if caps.get(k, v) is not None]
        self.lock = threading.Lock()
        self.sessions = 0
        self.commands = []  # (session number, command line bytes)
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    fake.serve(self.rfile, self.wfile)
                except OSError:
                    pass  # cloud-submit went away: its test says if ok

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # A short poll interval: shutdown() waits for the next poll.
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       args=(0.02,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def accept_jobs(node, line, session):
        words = line.split()
        if words[0].upper() == b"SUBMIT":
            return reply(250, words[1] + b" accepted")
        return reply(550, b"no such job")

    def commands_of(self, verb):
        with self.lock:
            return [(s, line) for s, line in self.commands
                    if line.split()[:1] == [verb]]

    def hello_reply(self):
        texts = [b"fake hello cloud-submit"]
        texts += [(k + (" " + v if v else "")).encode()
                  for k, v in self.caps]
        return reply(250, *texts)

    def serve(self, rfile, wfile):
        with self.lock:
            self.sessions += 1
            session = self.sessions
        wfile.write(self.greeting)
        while True:
            raw = rfile.readline()
            if not raw:
                return
            line = raw.rstrip(b"\r\n")
            words = line.split()
            verb = words[0].upper() if words else b""
            if verb == b"SUBMIT":
                rfile.read(int(words[2]) + int(words[3]))
            with self.lock:
                self.commands.append((session, line))
            if verb == b"HELLO":
                out = self.hello_reply()
            elif verb == b"QUIT":
                wfile.write(b"221 fake closing\r\n")
                return
            else:
                out = self.answer(self, line, session)
            if out is None:
                return
            wfile.write(out)
            if isinstance(out, Last):
                return


def result_answer(final_line, payload=b"", **report):
    """An answer to RESULT: a report, `final_line`, then `payload`, and
    the connection closes."""
    def answer(node, line, session):
        job_id = line.split()[1].decode()
        return Last(reply(250, *report_lines(job_id, **report),
                          final_line) + payload)
    return answer


class FakeNodeTestCase(unittest.TestCase):

    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="cloudproto-e2e-tool-")
        self.addCleanup(shutil.rmtree, self.folder, True)

    def file(self, name, data):
        path = os.path.join(self.folder, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def assert_one_line(self, err, pattern):
        """`err` is exactly one cloud-submit line that matches."""
        self.assertRegex(err, rb"\Acloud-submit: [^\n]*\n\Z")
        self.assertRegex(err, pattern)


# --- SCRIPT and DESCRIPTOR that are not files ------------------------------

class FileTest(FakeNodeTestCase):

    def test_a_directory_is_refused_and_nothing_is_sent(self):
        script = self.file("job.sh", b"echo hi\n")
        desc = self.file("job.toml", descriptor().encode())
        for args in ([self.folder, desc], [script, self.folder]):
            with self.subTest(args=args), FakeNode() as node:
                code, out, err, _ = run_submit(*args, node=node)
                self.assertEqual(code, 255)
                self.assertEqual(out, b"")
                self.assertEqual(err, b"cloud-submit: %s is not a regular "
                                 b"file\n" % self.folder.encode())
                self.assertEqual((node.sessions, node.commands), (0, []))

    def test_a_missing_file_says_why(self):
        desc = self.file("job.toml", descriptor().encode())
        missing = os.path.join(self.folder, "missing.sh")
        with FakeNode() as node:
            code, out, err, _ = run_submit(missing, desc, node=node)
        self.assertEqual((code, out), (255, b""))
        self.assert_one_line(err, rb"missing\.sh: No such file")
        self.assertEqual(node.sessions, 0)

    def test_an_empty_script_is_handed_in(self):
        script = self.file("empty.sh", b"")
        desc = self.file("job.toml", descriptor().encode())
        with FakeNode() as node:
            code, out, err, _ = run_submit(script, desc, node=node)
        self.assertEqual((code, err), (0, b""), err)
        self.assertEqual(len(node.commands_of(b"SUBMIT")), 1)


# --- payload sizes a node announces ----------------------------------------

class PayloadSizeTest(FakeNodeTestCase):

    def result(self, node, *flags, **kw):
        return run_submit("--result", new_job_id(), *flags, node=node, **kw)

    def test_more_than_max_output_bytes_is_refused(self):
        answer = result_answer(b"PAYLOAD 999999999999999999 5", b"x" * 5)
        with FakeNode(answer, caps={"MAX-OUTPUT-BYTES": "1000"}) as node:
            code, out, err, seconds = self.result(node)
        self.assertEqual((code, out), (255, b""))
        self.assert_one_line(err, rb"999999999999999999.*MAX-OUTPUT-BYTES "
                                  rb"1000")
        self.assertLess(seconds, PROMPT_SECONDS)

    def test_stderr_over_max_output_bytes_is_refused(self):
        answer = result_answer(b"PAYLOAD 0 1001", b"x" * 1001)
        with FakeNode(answer, caps={"MAX-OUTPUT-BYTES": "1000"}) as node:
            code, out, err, _ = self.result(node)
        self.assertEqual((code, out), (255, b""))
        self.assert_one_line(err, rb"1001.*MAX-OUTPUT-BYTES 1000")

    def test_without_max_output_bytes_the_hard_cap_applies(self):
        # Nothing follows the announcement: the refusal must not wait for
        # the octets, nor reserve room for them.
        for sizes in (b"3000000000 0", b"0 3000000000",
                      b"%d 1" % GIB, b"18446744073709551615 1"):
            answer = result_answer(b"PAYLOAD " + sizes)
            with self.subTest(sizes=sizes), \
                    FakeNode(answer, caps={"MAX-OUTPUT-BYTES": None}) as node:
                code, out, err, seconds = self.result(
                    node, address_space=ADDRESS_SPACE_BYTES)
                self.assertEqual((code, out), (255, b""))
                self.assert_one_line(err, rb"more than the 1073741824 bytes")
                self.assertLess(seconds, PROMPT_SECONDS)

    def test_announced_size_is_not_reserved_before_it_arrives(self):
        # The node may keep 4 GB per stream, so 3 GB passes the check;
        # then 10 octets come and the connection ends.
        answer = result_answer(b"PAYLOAD 3000000000 0", b"0123456789")
        caps = {"MAX-OUTPUT-BYTES": "4000000000"}
        with FakeNode(answer, caps=caps) as node:
            code, out, err, _ = self.result(
                node, address_space=ADDRESS_SPACE_BYTES)
        self.assertEqual((code, out), (255, b""))
        self.assert_one_line(err, rb"connection lost while reading the "
                                  rb"result")

    def test_output_at_the_limit_arrives_exactly(self):
        out_bytes = bytes(range(256)) * 4 + b"\x1b]0;x\x07"
        err_bytes = b"\r\n\x00" * 340
        final = b"PAYLOAD %d %d" % (len(out_bytes), len(err_bytes))
        answer = result_answer(final, out_bytes + err_bytes, out=out_bytes,
                               err=err_bytes)
        caps = {"MAX-OUTPUT-BYTES": str(len(out_bytes))}
        with FakeNode(answer, caps=caps) as node:
            code, out, err, _ = self.result(node, "--quiet")
        self.assertEqual((code, out, err), (0, out_bytes, err_bytes))

    def test_wait_refuses_too_much_as_well(self):
        def answer(node, line, session):
            if line.startswith(b"WAIT"):
                return reply(250, b"STATE done")
            return result_answer(b"PAYLOAD 2000 0")(node, line, session)
        with FakeNode(answer, caps={"MAX-OUTPUT-BYTES": "1000"}) as node:
            code, out, err, _ = self.result(node, "--wait", "--quiet")
        self.assertEqual((code, out), (255, b""))
        self.assert_one_line(err, rb"2000.*MAX-OUTPUT-BYTES 1000")


# --- control octets in replies --------------------------------------------

HOSTILE = b"\x1b]0;pwned\x07\x1b[2J caf\xc3\xa9\x7f\x00\r end"
HOSTILE_SHOWN = rb"\x1b]0;pwned\x07\x1b[2J caf\xc3\xa9\x7f\x00\x0d end"


def only_printable(data):
    """True when `data` holds printable ASCII and newlines only."""
    return re.fullmatch(rb"[\x20-\x7e\n]*", data) is not None


class EscapeTest(FakeNodeTestCase):

    def test_status_lines_are_escaped(self):
        def answer(node, line, session):
            job_id = line.split()[1].decode()
            return reply(250, *report_lines(job_id, state="failed",
                                            error=HOSTILE))
        with FakeNode(answer) as node:
            code, out, err, _ = run_submit("--status", new_job_id(),
                                           node=node)
        self.assertEqual((code, err), (0, b""))
        self.assertTrue(only_printable(out), out)
        self.assertIn(b"\nERROR " + HOSTILE_SHOWN + b"\n", out)

    def test_error_replies_are_escaped(self):
        answer = lambda node, line, session: reply(550, HOSTILE)
        for verb in ("--status", "--result"):
            with self.subTest(verb=verb), FakeNode(answer) as node:
                code, out, err, _ = run_submit(verb, new_job_id(),
                                               node=node)
                self.assertEqual((code, out), (255, b""))
                self.assertTrue(only_printable(err), err)
                self.assert_one_line(err, re.escape(b"550 " + HOSTILE_SHOWN))

    def test_a_hostile_greeting_is_escaped(self):
        with FakeNode(greeting=reply(554, HOSTILE)) as node:
            code, out, err, _ = run_submit("--status", new_job_id(),
                                           node=node)
        self.assertEqual((code, out), (255, b""))
        self.assertTrue(only_printable(err), err)
        self.assert_one_line(err, re.escape(HOSTILE_SHOWN))

    def test_report_is_escaped_but_output_is_not(self):
        job_out, job_err = b"\x1b[31mred\x07\n", b"\x1b]0;t\x07\n"
        final = b"PAYLOAD %d %d" % (len(job_out), len(job_err))
        answer = result_answer(final, job_out + job_err, state="failed",
                               error=HOSTILE)
        with FakeNode(answer) as node:
            code, out, err, _ = run_submit("--result", new_job_id(),
                                           node=node)
        self.assertEqual((code, out), (255, job_out))
        self.assertTrue(err.startswith(job_err), err)
        rest = err[len(job_err):]
        self.assertTrue(only_printable(rest), rest)
        self.assert_one_line(rest, re.escape(b"on fake: " + HOSTILE_SHOWN))

    def test_node_name_is_escaped(self):
        class HostileHello(FakeNode):
            def hello_reply(self):
                return reply(250, b"fa\x1bke hello cloud-submit",
                             b"MAX-JOB-BYTES 10")
        script = self.file("job.sh", b"echo too big for the node\n")
        desc = self.file("job.toml", descriptor().encode())
        with HostileHello() as node:
            code, out, err, _ = run_submit(script, desc, node=node)
        self.assertEqual((code, out), (255, b""))
        self.assert_one_line(err, re.escape(rb"fa\x1bke takes at most 10"))


# --- which failures are retried -------------------------------------------

class RetryTest(FakeNodeTestCase):

    def job_files(self):
        return (self.file("job.sh", b"echo hi\n"),
                self.file("job.toml", descriptor().encode()))

    def test_a_connection_lost_during_hand_in_is_retried_under_one_id(self):
        def answer(node, line, session):
            if session == 1:
                return None  # the payload was read; no reply comes
            return FakeNode.accept_jobs(node, line, session)
        with FakeNode(answer) as node:
            code, out, err, _ = run_submit(*self.job_files(), node=node)
        submits = node.commands_of(b"SUBMIT")
        self.assertEqual(code, 0, err)
        self.assertEqual([s for s, _ in submits], [1, 2])
        self.assertEqual(submits[0][1], submits[1][1])
        self.assertEqual(out, submits[0][1].split()[1] + b"\n")
        self.assertEqual(err.count(b"; trying again\n"), 1, err)

    def test_a_refused_connection_is_retried(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code, out, err, _ = run_submit(
            "--plain", "--node", "127.0.0.1:%d" % port, *self.job_files())
        self.assertEqual((code, out), (255, b""))
        lines = err.splitlines()
        self.assertEqual(len(lines), 3, err)
        self.assertTrue(all(b"Connection refused" in l for l in lines), err)
        self.assertEqual(err.count(b"; trying again"), 2, err)

    def test_a_malformed_reply_is_not_retried(self):
        answer = lambda node, line, session: b"hello there\r\n"
        with FakeNode(answer) as node:
            code, out, err, seconds = run_submit(*self.job_files(),
                                                 node=node)
        self.assertEqual((code, out), (255, b""))
        self.assert_one_line(err, rb"malformed reply")
        self.assertEqual(node.sessions, 1)
        self.assertLess(seconds, PROMPT_SECONDS)

    def test_a_refused_hello_is_not_retried(self):
        class NoHello(FakeNode):
            def hello_reply(self):
                return reply(501, b"no")
        with NoHello() as node:
            code, out, err, _ = run_submit(*self.job_files(), node=node)
        self.assertEqual((code, out), (255, b""))
        self.assert_one_line(err, rb"HELLO refused: 501 no")
        self.assertEqual(node.sessions, 1)


class RealNodeTest(harness.OneNodeTestCase):
    """Against a real node: its TLS listener, and jobs whose stderr does
    not end with a newline."""

    def test_a_certificate_that_does_not_verify_is_not_retried(self):
        # The system's authorities do not know the test's.
        where = ["--node", "127.0.0.1:%d" % self.node.tls_port]
        started = time.monotonic()
        code, out, err = self.node.cloud_submit(
            "--status", new_job_id(), where=where)
        self.assertEqual((code, out), (255, b""))
        self.assertRegex(err, rb"\Acloud-submit: TLS handshake with "
                              rb"[^\n]*certificate verify failed[^\n]*\n\Z")
        self.assertLess(time.monotonic() - started, PROMPT_SECONDS)

        script = self.node.file("verify.sh", b"echo hi\n")
        desc = self.node.file("verify.toml", descriptor())
        started = time.monotonic()
        code, out, err = self.node.cloud_submit(script, desc, where=where)
        self.assertEqual((code, out), (255, b""))
        self.assertRegex(err, rb"\Acloud-submit: TLS handshake with "
                              rb"[^\n]*certificate verify failed[^\n]*\n\Z")
        self.assertLess(time.monotonic() - started, PROMPT_SECONDS)

    # cloud-submit's own lines start on a line of their own

    def run_wait(self, stderr_bytes, *flags):
        script = b"printf out; printf '%s' >&2\n" % "".join(
            "\\%03o" % b for b in stderr_bytes).encode()
        return self.node.submit(script, descriptor(), "--wait", *flags)

    def test_a_line_after_stderr_without_newline_starts_anew(self):
        code, out, err = self.run_wait(b"half \xff")
        self.assertEqual((code, out), (0, b"out"), err)
        self.assertIn(b"half \xff\ncloud-submit: job ", err)
        self.assertRegex(err, rb"\ncloud-submit: job \S+ exited 0 [^\n]*\n\Z")

    def test_no_blank_line_after_stderr_with_newline(self):
        code, out, err = self.run_wait(b"whole\n")
        self.assertEqual(code, 0, err)
        self.assertIn(b"whole\ncloud-submit: job ", err)

    def test_quiet_leaves_stderr_byte_exact(self):
        code, out, err = self.run_wait(b"half \xff", "--quiet")
        self.assertEqual((code, out, err), (0, b"out", b"half \xff"))


if __name__ == "__main__":
    unittest.main()
