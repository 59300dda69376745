#!/usr/bin/python3
"""A customer's jobs, handed in with the real cloud-submit to a real node:
arguments arrive exactly, exit statuses come back, time limits kill every
process of a job, large output neither blocks nor overflows, scripts travel
byte for byte, bad jobs are refused with nothing stored, and a job handed
in twice runs once. Each job that ran leaves a result mail in the outbox.
"""

import hashlib
import os
import socket
import time
import unittest

import harness
from harness import descriptor, new_job_id

MAX_OUTPUT_BYTES = 262144
MAX_JOB_BYTES = 65536
# A refusal comes within milliseconds; cloud-submit should be gone soon.
REFUSAL_SECONDS = 8

# Each argument is one argv element, never word-split or expanded.
AWKWARD_ARGS = ["two words", "it's", 'say "hi"', "$HOME", "*",
                "back\\slash", "", "é", "漢字", "  lead and trail  "]

BASH_ECHO_ARGS = b'for a in "$@"; do printf \'[%s]\\n\' "$a"; done\n'
PYTHON_ECHO_ARGS = (b"import os, sys\n"
                    b"for a in sys.argv[1:]:\n"
                    b"    sys.stdout.buffer.write(b'[' + os.fsencode(a)"
                    b" + b']\\n')\n")

# Background processes that a job leaves behind when its time runs out:
# a plain background subshell, and a setsid'd shell whose own child
# outlives it (a double fork out of the job's session). Each sleep
# carries the tag in its command line (exec -a); the short ones would
# touch their marker before the test looks, the long ones would still
# be alive when it scans /proc.
RUNAWAY_SCRIPT = b"""\
tag=$1 dir=$2 mode=${3:-main}
nap() { (exec -a "$tag-sleep-$1" sleep "$1"); }
case $mode in
main)
    (nap 2; touch "$dir/$tag.short") &
    (nap 30; touch "$dir/$tag.long") &
    setsid /bin/bash "$0" "$tag" "$dir" fork &
    echo started
    nap 60
    ;;
fork)
    (nap 2; touch "$dir/$tag.setsid-short") &
    (nap 30; touch "$dir/$tag.setsid-long") &
    exit 0
    ;;
esac
"""


class SubmitTest(harness.OneNodeTestCase):

    # Runaway processes and repeated runs leave witnesses in files_dir.
    containment = harness.WITNESS_CONTAINMENT
    limits = {
        "max_output_bytes": MAX_OUTPUT_BYTES,
        "max_job_bytes": MAX_JOB_BYTES,
    }

    # helpers

    def run_job(self, script, desc, *flags, plain=False):
        """cloud-submit --wait under a new id; (id, code, out, err)."""
        job_id = new_job_id()
        code, out, err = self.node.submit(script, desc, "--wait",
                                          "--job-id", job_id, *flags,
                                          plain=plain)
        return job_id, code, out, err

    def status(self, job_id):
        with self.node.tls_client() as c:
            c.hello()
            return c.command("STATUS " + job_id)

    def check_mail(self, job_id, reply_to, outcome, stdout):
        """The job's .eml parses, goes to reply_to, names the job and its
        outcome (a regex) in the subject, and holds the decoded stdout."""
        raw, msg = self.node.mail(job_id)
        self.assertEqual(msg.defects, [], "mail defects")
        self.assertEqual([a.addr_spec for a in msg["To"].addresses],
                         [reply_to])
        subject = str(msg["Subject"])
        self.assertIn(job_id, subject)
        self.assertRegex(subject, outcome)
        for part in msg.walk():
            self.assertEqual(part.defects, [], "defects in a part")
        self.assertIn(stdout, harness.mail_leaf_bytes(msg),
                      "stdout not in the mail:\n%s" % raw[:3000])

    # arguments

    def check_arguments(self, runtime, script, plain):
        reply_to = "args-%s@example.org" % runtime
        desc = descriptor(runtime, args=AWKWARD_ARGS, reply_to=reply_to)
        job_id, code, out, err = self.run_job(script, desc, plain=plain)
        expected = "".join("[%s]\n" % a for a in AWKWARD_ARGS).encode()
        self.assertEqual((code, out), (0, expected), err)
        self.check_mail(job_id, reply_to, r"\bfinished\b|\bexited 0\b",
                        expected)

    def test_bash_arguments_arrive_exactly(self):
        self.check_arguments("bash", BASH_ECHO_ARGS, plain=False)

    def test_python_arguments_arrive_exactly(self):
        self.check_arguments("python", PYTHON_ECHO_ARGS, plain=False)

    def test_arguments_arrive_exactly_over_plain_listener(self):
        self.check_arguments("bash", BASH_ECHO_ARGS, plain=True)

    # how jobs end

    def test_exit_status_is_returned(self):
        reply_to = "exit@example.org"
        job_id, code, out, err = self.run_job(
            b"echo before exit\nexit 3\n", descriptor(reply_to=reply_to))
        self.assertEqual((code, out), (3, b"before exit\n"), err)
        report = self.status(job_id).fields()
        self.assertEqual((report["STATE"], report["OUTCOME"],
                          report["EXIT-CODE"]), ("done", "exited", "3"))
        self.check_mail(job_id, reply_to, r"\bexited 3\b", b"before exit\n")

    def test_signal_gives_128_plus_signal(self):
        reply_to = "signal@example.org"
        job_id, code, out, err = self.run_job(
            b"echo about to die\nkill -9 $$\necho survived\n",
            descriptor(reply_to=reply_to))
        self.assertEqual((code, out), (128 + 9, b"about to die\n"), err)
        report = self.status(job_id).fields()
        self.assertEqual((report["OUTCOME"], report["SIGNAL"]),
                         ("signalled", "9"))
        self.check_mail(job_id, reply_to, r"\bsignal 9\b", b"about to die\n")

    def test_timeout_kills_every_process_of_the_job(self):
        tag = "e2e-runaway-" + new_job_id()
        reply_to = "timeout@example.org"
        folder = self.node.files_dir
        self.addCleanup(harness.kill_processes_with, tag)

        started = time.monotonic()
        job_id, code, out, err = self.run_job(
            RUNAWAY_SCRIPT, descriptor(args=[tag, folder], reply_to=reply_to,
                                       timeout_seconds=1))
        elapsed = time.monotonic() - started
        self.assertEqual((code, out), (124, b"started\n"), err)
        self.assertLess(elapsed, 5.0, "cloud-submit took %.1f s" % elapsed)

        time.sleep(3)
        self.assertEqual(harness.processes_with(tag), [],
                         "processes of the timed-out job are still alive")
        markers = [n for n in os.listdir(folder) if n.startswith(tag)]
        self.assertEqual(markers, [], "a process of the job lived on")
        report = self.status(job_id).fields()
        self.assertEqual(report["OUTCOME"], "timeout")
        self.check_mail(job_id, reply_to, r"timed out|timeout", b"started\n")

    # output

    def test_large_stderr_before_stdout_is_capped_without_deadlock(self):
        produced = 3000000
        pattern = b"xxxxxxxxx\n" * (produced // 10)
        reply_to = "big@example.org"
        job_id, code, out, err = self.run_job(
            b"yes xxxxxxxxx | head -c 3000000 >&2\necho done\n",
            descriptor(reply_to=reply_to, timeout_seconds=20))
        self.assertEqual((code, out), (0, b"done\n"), err[-2000:])

        kept = pattern[:MAX_OUTPUT_BYTES]
        self.assertIn(kept, err)
        self.assertNotIn(pattern[:MAX_OUTPUT_BYTES + 1], err,
                         "cloud-submit printed more than the node keeps")
        self.assertRegex(err, rb"stderr\b[^\n]*\b%d\b[^\n]*\b%d\b"
                         % (produced, MAX_OUTPUT_BYTES),
                         "cloud-submit does not report the truncation")

        with self.node.tls_client() as c:
            c.hello()
            report = c.command("STATUS " + job_id).fields()
            reply, result_out, result_err = c.result(job_id)
        self.assertEqual(
            (report["STDOUT-BYTES"], report["STDERR-BYTES"],
             report["STDOUT-TRUNCATED"], report["STDERR-TRUNCATED"]),
            ("5", str(produced), "no", "yes"))
        self.assertEqual(reply.code, 250)
        self.assertEqual(result_out, b"done\n")
        self.assertEqual(result_err, kept)
        self.check_mail(job_id, reply_to, r"\bfinished\b|\bexited 0\b",
                        b"done\n")

    def test_script_octets_travel_unchanged(self):
        # bash runs the first two lines; the rest is never read as code.
        script = (b'sha256sum "$0" | cut -d" " -f1\n'
                  b"exit 0\n"
                  b".\r\n"
                  b"..two dots\r\n"
                  b". /etc/passwd\n"
                  b"QUIT\r\n"
                  b"nul \x00 here\r\n"
                  b"\r\n.\r\n"
                  b"\xff\xfe not UTF-8, no final newline")
        expected = (hashlib.sha256(script).hexdigest() + "\n").encode()
        reply_to = "octets@example.org"
        for plain in (False, True):
            with self.subTest(plain=plain):
                job_id, code, out, err = self.run_job(
                    script, descriptor(reply_to=reply_to), plain=plain)
                self.assertEqual((code, out), (0, expected), err)
                self.check_mail(job_id, reply_to, r"\bfinished\b|\bexited 0\b",
                                expected)

    # refusals

    def check_refused(self, script, desc, *problem_patterns, plain=False):
        """cloud-submit exits 255 with one line on stderr that matches
        each pattern; the node stored nothing under the id."""
        job_id = new_job_id()
        code, out, err = self.node.submit(script, desc, "--job-id", job_id,
                                          plain=plain,
                                          timeout=REFUSAL_SECONDS)
        self.assertEqual(code, 255, (out, err))
        self.assertEqual(out, b"")
        lines = err.decode("utf-8", "replace").splitlines()
        self.assertEqual(len(lines), 1, "expected one line, got %r" % lines)
        for pattern in problem_patterns:
            self.assertRegex(lines[0], pattern)
        reply = self.status(job_id)
        self.assertEqual(reply.code, 550, reply)
        self.assertFalse(os.path.exists(self.node.mail_path(job_id)))
        return lines[0]

    def test_bad_toml_is_refused(self):
        self.check_refused(b"echo never\n",
                           'runtime = "bash\nreply_to = "x@example.org"\n',
                           r"\b553\b", r"(?i)toml")

    def test_missing_reply_to_is_refused(self):
        self.check_refused(b"echo never\n", descriptor(reply_to=None),
                           r"\b553\b", r"reply_to")

    def test_unknown_runtime_is_refused(self):
        self.check_refused(b"echo never\n", descriptor(runtime="cobol"),
                           r"\b554\b", r"cobol")

    def test_timeout_above_the_node_maximum_is_refused(self):
        self.check_refused(b"echo never\n",
                           descriptor(timeout_seconds=100000),
                           r"\b553\b", r"timeout_seconds")

    def test_refusal_over_plain_listener(self):
        self.check_refused(b"echo never\n", descriptor(reply_to=None),
                           r"\b553\b", r"reply_to", plain=True)

    def test_job_of_max_job_bytes_runs_and_one_more_octet_is_refused(self):
        desc = descriptor(reply_to="size@example.org")
        head = b"echo fits\nexit 0\n#"
        fill = MAX_JOB_BYTES - len(desc.encode()) - len(head)
        job_id, code, out, err = self.run_job(head + b"#" * fill, desc)
        self.assertEqual((code, out), (0, b"fits\n"), err)

        self.check_refused(head + b"#" * (fill + 1), desc,
                           r"%d" % (MAX_JOB_BYTES + 1), r"%d" % MAX_JOB_BYTES)

    def test_raw_submit_larger_than_max_job_bytes_gets_552(self):
        job_id = new_job_id()
        with self.node.tls_client() as c:
            c.hello()
            c.line("SUBMIT %s 100 %d" % (job_id, MAX_JOB_BYTES))
            reply = c.reply()
            self.assertEqual(reply.code, 552, reply)
            self.assertIn(str(MAX_JOB_BYTES + 100), reply.text)
            self.assertTrue(c.is_closed(), "the node did not close")
        self.assertEqual(self.status(job_id).code, 550)

    def test_status_of_unknown_job_is_a_tool_error(self):
        job_id = new_job_id()
        code, out, err = self.node.cloud_submit("--status", job_id,
                                                timeout=REFUSAL_SECONDS)
        self.assertEqual((code, out), (255, b""), err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertRegex(err, rb"\b550\b")

    def test_no_node_is_a_tool_error(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code, out, err = self.node.cloud_submit(
            "-q", "--status", new_job_id(), timeout=REFUSAL_SECONDS,
            where=["--ca", self.node.ca, "--node", "127.0.0.1:%d" % port])
        self.assertEqual((code, out), (255, b""), err)
        self.assertEqual(len(err.splitlines()), 1, err)

    def test_node_certificate_from_another_authority_is_a_tool_error(self):
        # The system's authorities do not know the test authority.
        job_id = new_job_id()
        desc_path = self.node.file(job_id + ".toml", descriptor())
        script_path = self.node.file(job_id + ".sh", b"echo never\n")
        code, out, err = self.node.cloud_submit(
            "-q", "--job-id", job_id, script_path, desc_path,
            timeout=REFUSAL_SECONDS + 5,
            where=["--node", "127.0.0.1:%d" % self.node.tls_port])
        self.assertEqual((code, out), (255, b""), err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertRegex(err, rb"(?i)certificate|verify|tls")
        self.assertEqual(self.status(job_id).code, 550)

    # the same job twice

    def test_same_job_twice_runs_once(self):
        counter = harness.witness_file(os.path.join(
            self.node.files_dir, "runs-%s.txt" % new_job_id()))
        script = b'echo ran >> "$1"\necho counted\n'
        desc = descriptor(args=[counter], reply_to="twice@example.org")
        job_id = new_job_id()

        first = self.node.submit(script, desc, "--wait", "--job-id", job_id)
        self.assertEqual(first[:2], (0, b"counted\n"), first[2])
        second = self.node.submit(script, desc, "--job-id", job_id)
        self.assertEqual(second[:2], (0, job_id.encode() + b"\n"), second[2])
        again = self.node.submit(script, desc, "--wait", "--job-id", job_id)
        self.assertEqual(again[:2], (0, b"counted\n"), again[2])

        with self.node.tls_client() as c:
            c.hello()
            reply = c.submit(job_id, desc, script)
        self.assertEqual((reply.code, reply.text),
                         (250, job_id + " already accepted"))

        time.sleep(0.5)  # a second run, if there were one, has time to show
        with open(counter, "rb") as f:
            self.assertEqual(f.read(), b"ran\n", "the job ran more than once")
        self.check_mail(job_id, "twice@example.org",
                        r"\bfinished\b|\bexited 0\b", b"counted\n")

    def test_same_id_with_other_content_is_refused(self):
        job_id = new_job_id()
        desc = descriptor(reply_to="conflict@example.org")
        first = self.node.submit(b"echo first\n", desc, "--wait",
                                 "--job-id", job_id)
        self.assertEqual(first[:2], (0, b"first\n"), first[2])

        code, out, err = self.node.submit(b"echo second\n", desc,
                                          "--job-id", job_id,
                                          timeout=REFUSAL_SECONDS)
        self.assertEqual(code, 255, (out, err))
        self.assertRegex(err, rb"\b556\b")
        self.assertEqual(len(err.splitlines()), 1, err)

        with self.node.tls_client() as c:
            c.hello()
            reply = c.submit(job_id, desc.replace("conflict", "other"),
                             b"echo first\n")
            self.assertEqual(reply.code, 556, reply)
            reply, out, _ = c.result(job_id)
        self.assertEqual(out, b"first\n", "the first job's result changed")


if __name__ == "__main__":
    unittest.main()
