#!/usr/bin/python3
"""A Windows node, proven on Linux: the Windows build's cloud-node.exe
under Wine, driven by the Linux cloud-submit over TLS and by a Linux
node that relays to it.

- A Batch job runs through cmd.exe: its output comes back, and its
  `exit /b 3` arrives as cloud-submit's exit status 3; its result mail
  lands in the Windows node's outbox.
- Arguments that cmd.exe would otherwise run or expand (& | < > ^ ( ) !
  and spaces) reach the script as data.
- Arguments no cmd.exe line can carry ('"', '%', line ends) are refused
  at hand-in with 553, naming args; nothing is stored.
- A Linux node that does not offer `batch` relays a Batch job to the
  Windows node, the only one that does, and gets its result back.

Run by scripts/windows-check (CTest in build-windows/), which sets
CLOUD_NODE_WINDOWS to cloud-node.exe, CLOUD_NODE and CLOUD_SUBMIT to the
Linux build's, and prepares the Wine prefix.
"""

import os
import unittest

import federation
import harness
from harness import descriptor, new_job_id

WINDOWS = "provider-w"
LINUX = "provider-a"

# Prints each argument as cmd.exe hands it over (%1 keeps the quotes the
# node put around it, so nothing in it is run here either), then ends
# with status 3.
ECHO_ARGS = (b"@echo off\r\n"
             b"echo ran on windows\r\n"
             b":next\r\n"
             b"if [%1]==[] goto end\r\n"
             b"echo arg=%1\r\n"
             b"shift\r\n"
             b"goto next\r\n"
             b":end\r\n"
             b"exit /b 3\r\n")

# What cmd.exe would run, redirect, group or expand if the node did not
# quote it; each must arrive whole.
HOSTILE_ARGS = [
    "two words",
    "a & echo INJECTED",
    "b | echo INJECTED",
    "c > made.txt",
    "d < nowhere",
    "e ^& f",
    "(g)",
    "!PATH!",
    "h && echo INJECTED",
    "",
]

# What no cmd.exe line carries as data.
REFUSED_ARGS = [
    ('say "hi"', "'\"'"),
    ("%PATH%", "'%'"),
    ("line\nend", "control character"),
]


def echoed(stdout):
    """The `arg=` lines of ECHO_ARGS's output, quotes removed."""
    args = []
    for line in stdout.decode("utf-8", "replace").splitlines():
        line = line.rstrip("\r")
        if line.startswith("arg="):
            value = line[len("arg="):]
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            args.append(value)
    return args


@unittest.skipUnless(harness.WINDOWS_NODE_BINARY,
                     "CLOUD_NODE_WINDOWS is not set: run scripts/windows-check")
class WindowsNodeTest(federation.FederationTestCase):

    @classmethod
    def setUpClass(cls):
        cls.certs = federation.Certificates(names=(LINUX, WINDOWS))
        # One federation for the class: Wine starts slowly.
        cls.fed = federation.Federation(cls.certs, {
            LINUX: {},
            WINDOWS: {"windows": True},
        })
        cls.fed.start()
        cls.nodes = list(cls.fed)

    @classmethod
    def tearDownClass(cls):
        cls.fed.close()
        cls.certs.close()

    def run(self, result=None):
        return harness.NodeTestCase.run(self, result)

    def submit(self, name, args, *flags, script=ECHO_ARGS):
        job_id = new_job_id()
        desc = descriptor(runtime="batch", args=args)
        code, out, err = self.fed[name].submit(script, desc, "--job-id",
                                               job_id, *flags)
        return job_id, code, out, err

    def test_windows_node_offers_batch_and_the_linux_one_relays_it(self):
        with self.fed.customer(WINDOWS) as c:
            caps = federation.capabilities(c.hello())
        self.assertIn("batch", caps["RUNTIMES"], caps)
        with self.fed.customer(LINUX) as c:
            caps = federation.capabilities(c.hello())
        self.assertIn("batch", caps["RUNTIMES"], caps)

    def test_batch_job_runs_and_its_exit_status_arrives(self):
        job_id, code, out, err = self.submit(WINDOWS, ["one"], "--wait")
        self.assertEqual(code, 3, err)
        self.assertIn(b"ran on windows", out)
        self.assertEqual(echoed(out), ["one"])
        report = self.report(WINDOWS, job_id)
        self.assertEqual((report["STATE"], report["OUTCOME"],
                          report["EXIT-CODE"], report["NODE"]),
                         ("done", "exited", "3", WINDOWS), report)
        raw, mail = self.fed[WINDOWS].mail(job_id)
        self.assertIn(b"ran on windows", raw)
        self.assertIn(job_id, mail["Subject"])

    def test_hostile_arguments_arrive_as_data(self):
        job_id, code, out, err = self.submit(WINDOWS, HOSTILE_ARGS, "--wait")
        self.assertEqual(code, 3, err)
        self.assertEqual(echoed(out), HOSTILE_ARGS, out)
        self.assertNotIn(b"INJECTED\r\n", out.replace(b"arg=", b""))
        folder = self.fed[WINDOWS].work_dir
        self.assertFalse(any(name == "made.txt"
                             for _, _, files in os.walk(folder)
                             for name in files))

    def test_arguments_cmd_cannot_carry_are_refused_at_hand_in(self):
        for arg, why in REFUSED_ARGS:
            with self.subTest(arg=arg):
                job_id, code, out, err = self.submit(WINDOWS, ["ok", arg])
                self.assertNotEqual(code, 0)
                self.assertIn(b"553 descriptor rejected: args: ", err)
                self.assertIn(why.encode(), err)
                self.assertEqual(self.status_code(WINDOWS, job_id), 550)

    def test_arguments_refused_by_the_only_runner_fail_at_the_origin(self):
        # The Linux node stores the job (it runs no batch itself, so it
        # cannot judge its arguments); the Windows node refuses the
        # relay for good, and nobody else offers batch.
        job_id, code, out, err = self.submit(LINUX, ["100%"])
        self.assertEqual(code, 0, err)
        report = self.wait_for_state(LINUX, job_id, "failed", timeout=30)
        self.assertRegex(report.get("ERROR", ""),
                         r"%s refused it: 553 descriptor rejected: args: .*'%%'"
                         % WINDOWS)

    def test_linux_node_relays_batch_to_the_windows_node(self):
        job_id, code, out, err = self.submit(LINUX, ["relayed & more"],
                                             "--wait")
        self.assertEqual(code, 3, err)
        self.assertEqual(echoed(out), ["relayed & more"])
        report = self.report(LINUX, job_id)
        self.assertEqual((report["STATE"], report["NODE"],
                          report.get("RELAYED-TO"), report["EXIT-CODE"]),
                         ("done", WINDOWS, WINDOWS, "3"), report)


if __name__ == "__main__":
    unittest.main(verbosity=2)
