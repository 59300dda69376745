#!/usr/bin/python3
"""Custody across restarts: a node stopped with SIGTERM, or killed with
SIGKILL, runs again at its next start every job it had accepted and not
finished, loses none, keeps the results of finished ones, and still
recognises their ids.
"""

import os
import time
import unittest

import harness
from harness import descriptor, new_job_id

# Appends a line to the file named by $1 (outside the job's folder, so
# that runs can be counted), then naps $2 seconds and says $3.
COUNTING_SCRIPT = b'echo run >> "$1"\nsleep "$2"\necho "$3"\n'


def lines_in(path):
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def wait_for_lines(path, count, timeout=10):
    """Until the counter holds `count` runs: a job shown running may still
    be in its containment's set-up, before its script's first line."""
    deadline = time.monotonic() + timeout
    while lines_in(path) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return lines_in(path)


class RestartTest(harness.NodeTestCase):

    def setUp(self):
        self.node = harness.Node(limits={"slots": 1},
                                 containment=harness.WITNESS_CONTAINMENT)
        self.nodes = (self.node,)
        self.addCleanup(self.node.close)
        self.node.start()

    def counting_job(self, name, nap_seconds, tag=""):
        """(counter path, descriptor) of a job that says `name` when done."""
        counter = harness.witness_file(os.path.join(
            self.node.files_dir, "%s-%s.runs" % (name, new_job_id())))
        args = [counter, str(nap_seconds), name]
        if tag:
            args.append(tag)
        return counter, descriptor(args=args,
                                   reply_to="%s@example.org" % name)

    def state_of(self, job_id):
        with self.node.tls_client() as c:
            c.hello()
            reply = c.command("STATUS " + job_id)
        self.assertEqual(reply.code, 250, reply)
        return reply.fields()["STATE"]

    def wait_for_state(self, job_id, state, timeout=10):
        deadline = time.monotonic() + timeout
        while self.state_of(job_id) != state:
            if time.monotonic() > deadline:
                self.fail("job %s never %s" % (job_id, state))
            time.sleep(0.05)

    def hand_in(self, script, desc):
        code, out, err = self.node.submit(script, desc)
        self.assertEqual(code, 0, err)
        return out.decode().strip()

    def result(self, job_id):
        """cloud-submit --result ID --wait: (code, stdout, stderr)."""
        return self.node.cloud_submit("--result", job_id, "--wait")

    def test_sigterm_with_one_job_running_and_one_queued(self):
        # A finished job, to be found again after the restart.
        done_counter, done_desc = self.counting_job("finished", 0)
        done_id = self.hand_in(COUNTING_SCRIPT, done_desc)
        self.assertEqual(self.result(done_id)[:2], (0, b"finished\n"))

        long_counter, long_desc = self.counting_job("long", 3)
        long_id = self.hand_in(COUNTING_SCRIPT, long_desc)
        self.wait_for_state(long_id, "running")
        queued_counter, queued_desc = self.counting_job("queued", 0)
        queued_id = self.hand_in(COUNTING_SCRIPT, queued_desc)
        self.assertEqual(self.state_of(queued_id), "queued")
        self.assertEqual(wait_for_lines(long_counter, 1), 1)

        self.assertEqual(self.node.stop(), 0, "cloud-node did not exit 0 on"
                         " SIGTERM:\n" + self.node.log_tail())
        self.assertEqual(lines_in(queued_counter), 0,
                         "the queued job ran before the stop")
        self.node.start()

        # Both run to completion; the killed one once more, as custody says.
        code, out, err = self.result(long_id)
        self.assertEqual((code, out), (0, b"long\n"), err)
        code, out, err = self.result(queued_id)
        self.assertEqual((code, out), (0, b"queued\n"), err)
        self.assertEqual(lines_in(long_counter), 2,
                         "the interrupted job ran other than once more")
        self.assertEqual(lines_in(queued_counter), 1,
                         "the queued job ran other than once")
        self.node.mail(long_id)
        self.node.mail(queued_id)

        # The finished job: its report and result survived.
        self.check_kept_after_restart(done_id, b"finished\n")
        self.assertEqual(lines_in(done_counter), 1)

        # Ids are still known: a second hand-in runs nothing.
        with self.node.tls_client() as c:
            c.hello()
            for job_id, desc in ((done_id, done_desc),
                                 (queued_id, queued_desc)):
                reply = c.submit(job_id, desc, COUNTING_SCRIPT)
                self.assertEqual((reply.code, reply.text),
                                 (250, job_id + " already accepted"))
        time.sleep(0.5)
        self.assertEqual((lines_in(done_counter), lines_in(queued_counter)),
                         (1, 1), "a duplicate ran after the restart")
        self.assert_node_healthy(self.node)

    def check_kept_after_restart(self, job_id, stdout):
        with self.node.tls_client() as c:
            c.hello()
            report = c.command("STATUS " + job_id)
            self.assertEqual(report.code, 250, report)
            self.assertEqual((report.fields()["STATE"],
                              report.fields()["EXIT-CODE"]), ("done", "0"))
            reply, out, err = c.result(job_id)
            self.assertEqual((reply.code, out, err), (250, stdout, b""))
        code, out, err = self.result(job_id)
        self.assertEqual((code, out), (0, stdout), err)

    def test_sigkill_loses_no_accepted_job(self):
        tag = "e2e-crash-" + new_job_id()
        self.addCleanup(harness.kill_processes_with, tag)
        jobs = []  # (id, counter, expected stdout, descriptor)
        with self.node.tls_client() as c:
            c.hello()
            for i in range(8):
                nap = 3 if i == 0 else 0
                counter, desc = self.counting_job("crash%d" % i, nap, tag)
                job_id = new_job_id()
                reply = c.submit(job_id, desc, COUNTING_SCRIPT)
                self.assertEqual((reply.code, reply.text),
                                 (250, job_id + " accepted"))
                jobs.append((job_id, counter, b"crash%d\n" % i, desc))
            # Killed once its script has begun.
            self.assertEqual(wait_for_lines(jobs[0][1], 1), 1)
            self.node.kill()

        # The job that was running does not outlive the node.
        deadline = time.monotonic() + 3
        while harness.processes_with(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(harness.processes_with(tag), [],
                         "job processes outlived the killed node")

        self.node.start()
        for job_id, counter, stdout, _ in jobs:
            code, out, err = self.result(job_id)
            self.assertEqual((code, out), (0, stdout),
                             "job %s: %r" % (job_id, err))
            self.node.mail(job_id)
        # The first was killed mid-run and ran again; the others had not
        # started before the crash and ran once.
        self.assertEqual([lines_in(j[1]) for j in jobs], [2] + [1] * 7)
        self.check_kept_after_restart(jobs[-1][0], jobs[-1][2])

        # Ids are still known after the crash: the same job again runs
        # nothing, another job under a known id is refused.
        with self.node.plain_client() as c:
            c.hello()
            job_id, counter, _, desc = jobs[1]
            reply = c.submit(job_id, desc, COUNTING_SCRIPT)
            self.assertEqual((reply.code, reply.text),
                             (250, job_id + " already accepted"))
            reply = c.submit(job_id, desc, COUNTING_SCRIPT + b"# other\n")
            self.assertEqual(reply.code, 556, reply)
        time.sleep(0.5)
        self.assertEqual(lines_in(counter), 1, "a duplicate ran")
        self.assert_node_healthy(self.node)

    def test_restart_twice_keeps_results(self):
        counter, desc = self.counting_job("twice", 0)
        job_id = self.hand_in(COUNTING_SCRIPT, desc)
        self.assertEqual(self.result(job_id)[:2], (0, b"twice\n"))
        self.node.mail(job_id)
        for _ in range(2):
            self.node.restart()
            self.check_kept_after_restart(job_id, b"twice\n")
        with self.node.tls_client() as c:
            c.hello()
            reply = c.submit(job_id, desc, COUNTING_SCRIPT)
            self.assertEqual((reply.code, reply.text),
                             (250, job_id + " already accepted"))
        self.assertEqual(lines_in(counter), 1, "the job ran again")
        self.assert_node_healthy(self.node)

    def test_a_result_that_cannot_be_stored_is_retried_not_lost(self):
        # The outbox becomes a file: neither the mail nor so the result
        # can be written. The job must stay owed, not be dropped.
        outbox = self.node.outbox_dir
        os.rename(outbox, outbox + ".away")
        with open(outbox, "w") as f:
            f.write("not a folder\n")
        counter, desc = self.counting_job("stuck", 0)
        job_id = self.hand_in(COUNTING_SCRIPT, desc)
        deadline = time.monotonic() + 10
        while "result-stored result=tempfail" not in self.node.log_text():
            if time.monotonic() > deadline:
                self.fail("no failed result store in the log")
            time.sleep(0.05)
        self.assertEqual(self.state_of(job_id), "running")

        # The folder comes back: a retry stores it, the job ran once.
        os.remove(outbox)
        os.rename(outbox + ".away", outbox)
        self.wait_for_state(job_id, "done", timeout=15)
        self.node.mail(job_id)
        self.assertEqual(lines_in(counter), 1)

    def test_shutdown_ends_an_open_wait_before_its_421(self):
        # Spec 7.5: a multi-line reply under way gets its final line,
        # then the 421.
        counter, desc = self.counting_job("long", 30)
        job_id = self.hand_in(COUNTING_SCRIPT, desc)
        self.wait_for_state(job_id, "running")
        with self.node.plain_client() as c:
            c.hello()
            c.line("WAIT %s 60" % job_id)
            time.sleep(0.3)  # the first STATE line is on its way
            self.node.stop()
            wait = c.reply()
            self.assertEqual(wait.code, 250, wait)
            self.assertEqual(wait.lines[-1], "STATE running")
            bye = c.reply()
            self.assertEqual(bye.code, 421, bye)
            self.assertIn("shutting down", bye.text)

if __name__ == "__main__":
    unittest.main()
