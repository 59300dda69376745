#!/usr/bin/python3
"""The norm's session vectors (proto-spec/vectors/sessions/*.txt), replayed
by tests/e2e/session_vectors.py against a real node, over TLS and over the
plaintext listener. The node is set up as the vectors' README asks:
MAX-JOB-BYTES 65536, runtimes bash and python.
"""

import glob
import os
import re
import subprocess
import unittest

import harness

PYTHON = "/usr/bin/python3"
RUNNER = os.path.join(harness.SOURCE_DIR, "tests/e2e/session_vectors.py")
SESSIONS = sorted(glob.glob(os.path.join(
    harness.SOURCE_DIR, "proto-spec/vectors/sessions/*.txt")))
RUN_TIMEOUT_SECONDS = 300  # all scripts of one transport


class VectorTest(harness.OneNodeTestCase):

    limits = {"max_job_bytes": 65536}

    def replay(self, tls):
        self.assertTrue(SESSIONS, "no session scripts found")
        if tls:
            where = ["--port", str(self.node.tls_port), "--tls",
                     "--ca", self.node.ca]
        else:
            where = ["--port", str(self.node.plain_port)]
        done = subprocess.run([PYTHON, RUNNER, "--host", "127.0.0.1"] +
                              where + SESSIONS, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=RUN_TIMEOUT_SECONDS)
        report = done.stdout.decode("utf-8", "replace")

        # One verdict per script, each failure with the runner's reason.
        failures = {}
        passed = set()
        for line in report.splitlines():
            if line.startswith("pass "):
                passed.add(line[5:])
            elif line.startswith("FAIL "):
                name = re.split(r"[ :(]", line[5:], 1)[0]
                failures.setdefault(name, []).append(line)
        for path in SESSIONS:
            name = os.path.basename(path)
            with self.subTest(script=name):
                self.assertNotIn(name, failures,
                                 "\n".join(failures.get(name, [])))
                self.assertIn(name, passed, "no verdict for the script")
        self.assertEqual(done.returncode, 0,
                         report[-3000:] + done.stderr.decode()[-2000:])

    def test_vectors_over_tls(self):
        self.replay(tls=True)

    def test_vectors_over_plain_listener(self):
        self.replay(tls=False)


if __name__ == "__main__":
    unittest.main()
