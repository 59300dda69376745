#!/usr/bin/python3
"""The federation (issue 3) with three real nodes on loopback, full mesh:
a job handed in at a node that has no free slot runs at a peer and its
result comes back to the origin; a burst spreads over all three; a
runtime that one node runs lands there from the others; one that nobody
runs, or whose only runner's limits a job passes, is refused at once; a
returned output is kept within the origin's own limit; jobs from every
node run exactly once. Then the peer verbs spoken by hand: capabilities
and CAPACITY, RELAY's parameter, loop and hop checks, a RELAY relayed on,
a RELAY sent twice, who may use the verbs at all (530), RETURN's syntax
and a RETURN from the wrong peer (550).

Faults (a peer killed, frozen or down, an origin killed) and the trust
of links are in test_federation_faults.py.
"""

import glob
import os
import subprocess
import time
import unittest

import federation
import harness
from federation import (APPEND_SCRIPT, BASH, NAMES, OUTSIDER, PERL,
                        PERL_SCRIPT, PYTHON, capabilities, done_report,
                        relay, return_result, runs_in)
from harness import descriptor, new_job_id

A, B, C = NAMES

# provider-a has one slot, the others two; only provider-c runs perl.
# provider-a keeps less output, provider-c takes smaller and shorter jobs
# than the others.
A_MAX_OUTPUT_BYTES = 1000
C_MAX_JOB_BYTES = 65536
C_MAX_TIMEOUT_SECONDS = 60
ROUTING_NODES = {
    A: {"limits": {"slots": 1, "max_output_bytes": A_MAX_OUTPUT_BYTES}},
    B: {"limits": {"slots": 2}},
    C: {"limits": {"slots": 2, "max_job_bytes": C_MAX_JOB_BYTES,
                   "max_timeout_seconds": C_MAX_TIMEOUT_SECONDS},
        "runtimes": {"bash": BASH, "python": PYTHON, "perl": PERL}},
}
HOP_LIMIT = 3
REFUSAL_SECONDS = 5
# The norm's peer-session vectors, replayed as provider-b at provider-a.
VECTOR_RUNNER = os.path.join(harness.SOURCE_DIR, "tests/e2e/session_vectors.py")
PEER_VECTORS = sorted(glob.glob(os.path.join(
    harness.SOURCE_DIR, "proto-spec/vectors/sessions/peer/*.txt")))


class RoutingTest(federation.FederationTestCase):
    """A fresh federation per test."""

    def setUp(self):
        self.federation(ROUTING_NODES)

    def test_job_at_a_node_without_free_slot_runs_at_a_peer(self):
        a = self.fed[A]

        # Fill provider-a's only slot.
        blocker_id, blocker = self.append_job(nap=6)
        with self.fed.customer(A) as c:
            c.hello()
            self.hand_in(c, blocker_id, blocker)
        a.wait_for_log(r"%s job started" % blocker_id)

        # The job a customer hands in there runs at a peer. While it runs
        # there, the origin shows it relayed; cloud-submit --wait at the
        # origin prints its output.
        job_id, desc = self.append_job(nap=1.5, reply_to="far@example.org")
        script_path = a.file(job_id + ".sh", APPEND_SCRIPT)
        desc_path = a.file(job_id + ".toml", desc)
        waiting = subprocess.Popen(
            [harness.SUBMIT_BINARY] + a.submit_args()
            + ["--wait", "--job-id", job_id, script_path, desc_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        try:
            relayed = self.wait_for_state(A, job_id, "relayed")
            out, err = waiting.communicate(
                timeout=harness.SUBMIT_WAIT_TIMEOUT_SECONDS)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.communicate()
        self.assertEqual(waiting.returncode, 0, err)
        runner = self.fed.runner_by_folder(out)
        self.assertIn(runner, (B, C), "ran elsewhere than at a peer: %r"
                      % out)
        self.assertEqual((relayed["NODE"], relayed.get("RELAYED-TO")),
                         (runner, runner), relayed)
        self.assertEqual(out, ("%s ran in " % job_id).encode()
                         + out.split(b" ran in ", 1)[1])
        self.assertEqual(self.fed.ran_at(job_id), [runner])

        # The origin's report names the runner and the peer it relayed to.
        report = self.report(A, job_id)
        self.assertEqual((report["STATE"], report["NODE"],
                          report.get("RELAYED-TO"), report.get("EXIT-CODE")),
                         ("done", runner, runner, "0"), report)
        fields, result_out, result_err = self.result(A, job_id)
        self.assertEqual((fields["NODE"], fields.get("RELAYED-TO"),
                          result_out, result_err),
                         (runner, runner, out, b""))

        # The runner holds it as relayed from a; it mails, a does not.
        at_runner = self.report(runner, job_id)
        self.assertEqual((at_runner["STATE"], at_runner["NODE"],
                          at_runner.get("TRACE")), ("done", runner, A),
                         at_runner)
        _, mail = self.fed[runner].mail(job_id)
        self.assertEqual([x.addr_spec for x in mail["To"].addresses],
                         ["far@example.org"])
        time.sleep(0.3)
        self.assertFalse(os.path.exists(a.mail_path(job_id)),
                         "the origin mailed a result it did not produce")

        # All the while the blocker held the origin's slot.
        self.assertEqual(self.report(A, blocker_id)["STATE"], "running")

    def test_burst_at_one_node_spreads_over_all_three(self):
        jobs = [self.append_job(nap=0.5) for _ in range(12)]
        with self.fed.customer(A) as c:
            c.hello()
            for job_id, desc in jobs:
                self.hand_in(c, job_id, desc)
        ids = [j for j, _ in jobs]
        states = self.wait_final(A, ids)
        self.assertEqual(set(states.values()), {"done"}, states)

        runners = {}
        for job_id in ids:
            fields, out, err = self.result(A, job_id)
            runners[job_id] = fields["NODE"]
            self.assertEqual(self.fed.runner_by_folder(out), fields["NODE"],
                             "NODE %s, but the job said %r"
                             % (fields["NODE"], out))
            if fields["NODE"] != A:
                self.assertEqual(fields.get("RELAYED-TO"), fields["NODE"])
        self.assertEqual(set(runners.values()), set(NAMES),
                         "the burst did not reach every node: %r" % runners)
        self.assert_ran_once_each(ids)

    def test_runtime_one_node_runs_lands_there_from_the_others(self):
        for origin in (A, B):
            with self.subTest(origin=origin):
                job_id, desc = self.append_job(runtime="perl")
                code, out, err = self.fed[origin].submit(
                    PERL_SCRIPT, desc, "--wait", "--job-id", job_id)
                self.assertEqual(code, 0, err)
                self.assertRegex(out, rb"^%s ran in \S+ with perl\n\Z"
                                 % job_id.encode())
                self.assertEqual(self.fed.runner_by_folder(out), C)
                report = self.report(origin, job_id)
                self.assertEqual((report["STATE"], report["NODE"],
                                  report.get("RELAYED-TO"),
                                  report["RUNTIME"]),
                                 ("done", C, C, "perl"), report)
                self.assertEqual(self.fed.ran_at(job_id), [C])

        # Customers of every node are told that perl is accepted there.
        for name in NAMES:
            with self.fed.customer(name) as c:
                caps = capabilities(c.hello())
            self.assertIn("perl", caps["RUNTIMES"], (name, caps))

    def test_job_handed_in_again_at_another_origin_after_it_ran(self):
        # The same perl job (same id, same octets) handed in at provider-a,
        # run at provider-c, then handed in at provider-b: provider-c
        # answers provider-b's RELAY "already accepted" and owes it the
        # result too (spec 8.10 step 10, 16.8), so cloud-submit --wait at
        # provider-b ends with the output, and nothing runs twice.
        job_id, desc = self.append_job(runtime="perl")
        with self.fed.customer(A) as c:
            c.hello()
            self.hand_in(c, job_id, desc, PERL_SCRIPT)
        self.assertEqual(self.wait_final(A, [job_id]), {job_id: "done"})

        code, out, err = self.fed[B].submit(PERL_SCRIPT, desc, "--wait",
                                            "--job-id", job_id, timeout=30)
        self.assertEqual(code, 0, err)
        self.assertEqual(self.fed.runner_by_folder(out), C, out)
        self.assertRegex(self.fed[C].log_text(), r"%s job duplicate "
                         r"session=\S+ from=%s\b" % (job_id, B))
        for origin in (A, B):
            fields, got, _ = self.result(origin, job_id)
            self.assertEqual((fields["STATE"], fields["NODE"],
                              fields.get("RELAYED-TO")), ("done", C, C),
                             origin)
            self.assertRegex(got, rb"^%s ran in \S+ with perl\n\Z"
                             % job_id.encode())
        self.assertEqual(self.fed.ran_at(job_id), [C])
        self.assert_ran_once_each([job_id])

    def test_runtime_nobody_runs_is_refused_at_once(self):
        job_id = new_job_id()
        started = time.monotonic()
        code, out, err = self.fed[A].submit(
            b"echo never\n", descriptor("cobol"), "--job-id", job_id,
            timeout=REFUSAL_SECONDS + 5)
        self.assertLess(time.monotonic() - started, REFUSAL_SECONDS)
        self.assertEqual((code, out), (255, b""), err)
        self.assertRegex(err, rb"\b554\b")
        self.assertIn(b"cobol", err)

        with self.fed.customer(B) as c:
            c.hello()
            reply = c.submit(job_id, descriptor("cobol"), b"echo never\n")
        self.assertEqual((reply.code, reply.text),
                         (554, "runtime cobol is not offered by any"
                          " provider"))
        for name in NAMES:
            self.assertEqual(self.status_code(name, job_id), 550, name)

    def test_job_beyond_the_only_runners_limits_is_refused(self):
        # Only provider-c runs perl, and it takes neither a job longer
        # than its MAX-TIMEOUT-SECONDS nor one larger than its
        # MAX-JOB-BYTES: no peer could take them (spec 16.5).
        long_id = new_job_id()
        big_id = new_job_id()
        desc = descriptor("perl", timeout_seconds=C_MAX_TIMEOUT_SECONDS + 1)
        big_script = b"print 1;\n" + b"#" * C_MAX_JOB_BYTES
        with self.fed.customer(A) as c:
            c.hello()
            for job_id, d, script in ((long_id, desc, b"print 1;\n"),
                                      (big_id, descriptor("perl"),
                                       big_script)):
                with self.subTest(job_id=job_id):
                    reply = c.submit(job_id, d, script)
                    self.assertEqual((reply.code, reply.text),
                                     (554, "runtime perl is not offered by"
                                      " any provider"))
        for job_id in (long_id, big_id):
            self.assertEqual(self.status_code(A, job_id), 550)

    def test_job_refused_by_its_only_runner_fails_at_the_origin(self):
        # provider-c already holds another job under the same id: it
        # answers the RELAY 556, and no other peer runs perl. The job ends
        # failed at the origin, which names the refusal and mails it
        # (spec 16.9).
        job_id = new_job_id()
        with self.fed.customer(C) as c:
            c.hello()
            self.hand_in(c, job_id, descriptor("perl"), b"print 1;\n")
        with self.fed.customer(A) as c:
            c.hello()
            self.hand_in(c, job_id, descriptor("perl"), b"print 2;\n")
        self.assertEqual(self.wait_final(A, [job_id]), {job_id: "failed"})
        report = self.report(A, job_id)
        self.assertEqual(report["NODE"], A, report)
        self.assertIn(C, report.get("ERROR", ""), report)
        self.assertIn("556", report.get("ERROR", ""), report)
        self.fed[A].mail(job_id)
        # provider-c's own job is untouched.
        self.assertEqual(self.wait_final(C, [job_id]), {job_id: "done"})
        _, out, _ = self.result(C, job_id)
        self.assertEqual(out, b"1")

    def test_returned_output_is_kept_within_the_origins_limit(self):
        # provider-c keeps all 5000 octets; provider-a keeps its own
        # MAX-OUTPUT-BYTES of them and says so (spec 16.8).
        job_id = new_job_id()
        script = b'print "x" x 5000; print STDERR "e" x 10;\n'
        with self.fed.customer(A) as c:
            c.hello()
            self.hand_in(c, job_id, descriptor("perl"), script)
        self.assertEqual(self.wait_final(A, [job_id]), {job_id: "done"})
        fields, out, err = self.result(A, job_id)
        self.assertEqual(fields["NODE"], C)
        self.assertEqual((out, err), (b"x" * A_MAX_OUTPUT_BYTES, b"e" * 10))
        self.assertEqual((fields["STDOUT-BYTES"], fields["STDOUT-TRUNCATED"],
                          fields["STDERR-BYTES"], fields["STDERR-TRUNCATED"]),
                         ("5000", "yes", "10", "no"), fields)
        fields, out, _ = self.result(C, job_id)
        self.assertEqual((len(out), fields["STDOUT-TRUNCATED"]),
                         (5000, "no"))

    def test_full_mesh_jobs_from_every_node_run_once(self):
        # Four jobs handed in at each node, more than all slots together:
        # jobs are relayed in several directions over the mesh's cycles.
        jobs = {name: [self.append_job(nap=0.5) for _ in range(4)]
                for name in NAMES}
        clients = {name: self.fed.customer(name) for name in NAMES}
        try:
            for c in clients.values():
                c.hello()
            for i in range(4):
                for name in NAMES:
                    job_id, desc = jobs[name][i]
                    self.hand_in(clients[name], job_id, desc)
        finally:
            for c in clients.values():
                c.close()

        moved = 0
        for origin in NAMES:
            ids = [j for j, _ in jobs[origin]]
            states = self.wait_final(origin, ids)
            self.assertEqual(set(states.values()), {"done"}, states)
            for job_id in ids:
                fields, out, _ = self.result(origin, job_id)
                self.assertEqual(self.fed.runner_by_folder(out),
                                 fields["NODE"], (origin, fields, out))
                self.assertEqual(self.fed.ran_at(job_id), [fields["NODE"]])
                moved += fields["NODE"] != origin
        self.assertGreater(moved, 0, "no job was relayed at all")
        self.assert_ran_once_each([j for name in NAMES
                                   for j, _ in jobs[name]])


class PeerProtocolTest(federation.FederationTestCase):
    """The peer verbs spoken by hand, over one federation for the class
    (hop limit 3)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.shared = federation.Federation(cls.certs, ROUTING_NODES,
                                           hop_limit=HOP_LIMIT)
        try:
            cls.shared.start()
        except Exception:
            cls.shared.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.shared.close()
        super().tearDownClass()

    def setUp(self):
        self.fed = self.shared
        self.nodes = list(self.fed)

    def test_hello_tells_peers_what_it_tells_customers_not(self):
        with self.fed.peer_client(A, as_peer=B) as c:
            peer_caps = capabilities(c.hello(B))
        self.assertEqual(sorted(peer_caps["RUNTIMES"]), ["bash", "python"],
                         "a node announces to peers only what it runs")
        self.assertEqual(peer_caps.get("RELAY"), [str(HOP_LIMIT)])
        self.assertEqual(peer_caps.get("CAPACITY"), [])
        self.assertEqual(peer_caps.get("RETURN"), [])

        with self.fed.customer(A) as c:
            customer_caps = capabilities(c.hello())
        self.assertEqual(sorted(customer_caps["RUNTIMES"]),
                         ["bash", "perl", "python"])
        for keyword in ("RELAY", "CAPACITY", "RETURN"):
            self.assertNotIn(keyword, customer_caps)

    def test_node_without_peers_does_not_offer_the_federation(self):
        lone = harness.Node(name=B, certs=self.certs.folder)
        self.addCleanup(lone.close)
        lone.start()
        with harness.Client.tls(lone.tls_port, self.certs.ca,
                                certificate=self.certs.pair(C)) as c:
            caps = capabilities(c.hello(C))
            for keyword in ("RELAY", "CAPACITY", "RETURN"):
                self.assertNotIn(keyword, caps)
            for verb in ("CAPACITY", "RELAY", "RETURN"):
                reply = c.command(verb)
                self.assertEqual((reply.code, reply.text),
                                 (500, "unknown verb " + verb))

    def test_capacity_counts_slots_shared_by_runtimes(self):
        # One of provider-c's two slots taken by a bash job: both of its
        # runtimes show one free slot.
        job_id, desc = self.append_job(nap=4)
        with self.fed.customer(C) as c:
            c.hello()
            self.hand_in(c, job_id, desc)
        self.fed[C].wait_for_log(r"%s job started" % job_id)
        with self.fed.peer_client(C, as_peer=A) as c:
            c.hello(A)
            reply = c.command("CAPACITY")
        self.assertEqual(reply.code, 250, reply)
        self.assertEqual(reply.lines[0], "%s capacity" % C)
        self.assertEqual(sorted(reply.lines[1:]),
                         ["RUNTIME bash 1 0", "RUNTIME perl 1 0",
                          "RUNTIME python 1 0"])

    def test_relay_whose_trace_holds_the_receiver_is_refused(self):
        job_id, desc = self.append_job(nap=0)
        with self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            reply = relay(c, job_id, desc, APPEND_SCRIPT, 2, [A, B])
            self.assertEqual((reply.code, reply.text),
                             (557, "%s would loop: the trace already holds"
                              " %s" % (job_id, A)))
            self.assertEqual(c.command("NOOP").code, 250,
                             "the session did not go on")
        self.assertEqual(self.status_code(A, job_id), 550)

        # Node names compare without regard to case (spec 8.10).
        with self.subTest("trace names in upper case"), \
                self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            reply = relay(c, job_id, desc, APPEND_SCRIPT, 3,
                          [C, A.upper(), B])
            self.assertEqual(reply.code, 557, reply)
            self.assertRegex(reply.text, r"(?i)^%s would loop: the trace"
                             r" already holds %s$" % (job_id, A))
            self.assertEqual(self.status_code(A, job_id), 550)

    def test_relay_over_the_hop_limit_is_refused(self):
        job_id, desc = self.append_job(nap=0)
        trace = ["far-%d" % i for i in range(HOP_LIMIT)] + [B]
        with self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            reply = relay(c, job_id, desc, APPEND_SCRIPT, HOP_LIMIT + 1,
                          trace)
            self.assertEqual((reply.code, reply.text),
                             (557, "%s exceeds the hop limit of %d"
                              % (job_id, HOP_LIMIT)))
            self.assertEqual(self.status_code(A, job_id), 550)

            # Exactly at the limit it is taken, for a runtime it runs.
            reply = relay(c, job_id, desc, APPEND_SCRIPT, HOP_LIMIT,
                          trace[1:])
            self.assertEqual((reply.code, reply.text),
                             (250, job_id + " accepted"))

        self.assertEqual(self.wait_final(A, [job_id]), {job_id: "done"})
        self.assertEqual(self.report(A, job_id)["NODE"], A)

        # At the limit, a runtime it would have to relay on: one more hop
        # would pass the runner's hop limit, so no peer could take the job
        # (spec 8.10 step 12, 16.5): 557 naming the hop limit (not 554:
        # provider-c does offer perl), and nothing stored.
        with self.subTest("at the limit, a runtime run elsewhere"), \
                self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            perl_id, perl_desc = self.append_job(runtime="perl")
            reply = relay(c, perl_id, perl_desc, PERL_SCRIPT, HOP_LIMIT,
                          trace[1:])
            self.assertEqual((reply.code, reply.text),
                             (557, "%s would pass the hop limit of %d to"
                              " reach runtime perl" % (perl_id, HOP_LIMIT)))
            self.assert_session_goes_on(c, reply)
            self.assertEqual(self.status_code(A, perl_id), 550)

    def test_relay_of_a_runtime_the_receiver_does_not_run_goes_on(self):
        # provider-a does not run perl: it relays the job on to
        # provider-c, one hop more, and the result comes back to it.
        job_id, desc = self.append_job(runtime="perl")
        with self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            reply = relay(c, job_id, desc, PERL_SCRIPT, 1, [B])
            self.assertEqual((reply.code, reply.text),
                             (250, job_id + " accepted"))
        self.assertEqual(self.wait_final(A, [job_id]), {job_id: "done"})
        fields, out, _ = self.result(A, job_id)
        # The report is the one returned (spec 16.8): TRACE as at the
        # runner, RELAYED-TO and ACCEPTED provider-a's own.
        self.assertEqual((fields["NODE"], fields.get("RELAYED-TO"),
                          fields.get("TRACE")), (C, C, "%s,%s" % (B, A)),
                         fields)
        self.assertEqual(self.fed.runner_by_folder(out), C)
        at_c = self.report(C, job_id)
        self.assertEqual((at_c["STATE"], at_c.get("TRACE")),
                         ("done", "%s,%s" % (B, A)), at_c)
        self.assertEqual(self.fed.ran_at(job_id), [C])
        self.assertRegex(self.fed[A].log_text(),
                         r"%s job relayed peer=%s hops=2\b" % (job_id, C))

        # The only runner is in the trace already: no peer could take it
        # (spec 8.10 step 12): 557 naming the runner in the trace, and
        # nothing stored.
        with self.subTest("the runner in the trace"), \
                self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            other_id, desc = self.append_job(runtime="perl")
            reply = relay(c, other_id, desc, PERL_SCRIPT, 2, [C, B])
            self.assertEqual((reply.code, reply.text),
                             (557, "%s would loop: runtime perl runs only at"
                              " %s, in its trace" % (other_id, C)))
            self.assertEqual(self.status_code(A, other_id), 550)

    def assert_session_goes_on(self, client, reply):
        try:
            noop = client.command("NOOP")
        except (harness.Closed, OSError) as e:
            self.fail("the node closed the session after %r (%s)"
                      % (reply, e))
        self.assertEqual(noop.code, 250, noop)

    # RELAY parameters (spec 8.10 steps 6 and 7): each is refused once the
    # payload is read, the session goes on, and nothing is stored.
    RELAY_PARAMETER_CASES = [
        ("", 501),
        ("HOPS=1", 501),
        ("TRACE=%s" % B, 501),
        ("HOPS=1 HOPS=1 TRACE=%s" % B, 501),
        ("HOPS=1 TRACE=%s TRACE=%s" % (B, B), 501),
        ("HOPS=x TRACE=%s" % B, 501),
        ("HOPS=0 TRACE=%s" % B, 501),
        ("HOPS=2 TRACE=%s,,%s" % (C, B), 501),
        ("HOPS=1 TRACE=bad!name", 501),
        ("HOPS=2 TRACE=%s" % B, 501),              # fewer names than hops
        ("HOPS=1 TRACE=%s,%s" % (C, B), 501),      # more names than hops
        ("HOPS=1 TRACE=%s" % C, 501),              # not the session's peer
        ("HOPS=1 TRACE=%s COLOUR=red" % B, 555),
    ]

    def test_relay_parameters_are_checked_after_the_payload(self):
        for params, code in self.RELAY_PARAMETER_CASES:
            with self.subTest(params=params), \
                    self.fed.peer_client(A, as_peer=B) as c:
                job_id, desc = self.append_job(nap=0)
                c.hello(B)
                reply = relay(c, job_id, desc, APPEND_SCRIPT, 0, [],
                              params=params)
                self.assertEqual(reply.code, code, reply)
                if code == 555:
                    self.assertEqual(reply.text,
                                     "parameter COLOUR not recognised")
                self.assert_session_goes_on(c, reply)
                self.assertEqual(self.status_code(A, job_id), 550,
                                 "the job was stored")

    def test_relay_parameter_keys_are_matched_in_any_case(self):
        job_id, desc = self.append_job(nap=0)
        with self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            reply = relay(c, job_id, desc, APPEND_SCRIPT, 0, [],
                          params="trace=%s Hops=1" % B)
            self.assertEqual((reply.code, reply.text),
                             (250, job_id + " accepted"))
        self.assertEqual(self.wait_final(A, [job_id]), {job_id: "done"})

    def test_relay_larger_than_max_job_bytes_is_refused_unread(self):
        job_id = new_job_id()
        with self.fed.peer_client(C, as_peer=A) as c:
            c.hello(A)
            c.line("RELAY %s 100 %d HOPS=1 TRACE=%s"
                   % (job_id, C_MAX_JOB_BYTES, A))
            reply = c.reply()
            self.assertEqual((reply.code, reply.text),
                             (552, "job of %d octets exceeds MAX-JOB-BYTES"
                              " %d" % (C_MAX_JOB_BYTES + 100,
                                       C_MAX_JOB_BYTES)))
            self.assertTrue(c.is_closed(), "the node did not close")
        self.assertEqual(self.status_code(C, job_id), 550)

    def test_return_with_bad_counts_or_id_is_a_syntax_error(self):
        # Counts the node cannot trust: 501, and it closes (spec 8.11).
        for line in ("RETURN %s 65537 0 0", "RETURN %s 10 x 0",
                     "RETURN %s 10 0"):
            with self.subTest(line=line), \
                    self.fed.peer_client(A, as_peer=C) as c:
                c.hello(C)
                reply = c.command(line % new_job_id())
                self.assertEqual(reply.code, 501, reply)
                self.assertTrue(c.is_closed(), "the node did not close")
        # A bad identifier: 501 once the payload is read; it goes on.
        with self.fed.peer_client(A, as_peer=C) as c:
            c.hello(C)
            reply = return_result(c, "short", done_report("short", C))
            self.assertEqual(reply.code, 501, reply)
            self.assert_session_goes_on(c, reply)

    def test_same_relay_twice_runs_once(self):
        job_id, desc = self.append_job(nap=0.3)
        with self.fed.peer_client(B, as_peer=C) as c:
            c.hello(C)
            reply = relay(c, job_id, desc, APPEND_SCRIPT, 1, [C])
            self.assertEqual((reply.code, reply.text),
                             (250, job_id + " accepted"))
        # The reply was "lost": the sender tries again on a new link.
        with self.fed.peer_client(B, as_peer=C) as c:
            c.hello(C)
            for _ in range(2):
                reply = relay(c, job_id, desc, APPEND_SCRIPT, 1, [C])
                self.assertEqual((reply.code, reply.text),
                                 (250, job_id + " already accepted"))
            reply = relay(c, job_id, desc, APPEND_SCRIPT + b"# other\n",
                          1, [C])
            self.assertEqual(reply.code, 556, reply)

        self.assertEqual(self.wait_final(B, [job_id]), {job_id: "done"})
        time.sleep(0.5)  # a second run, if there were one, has time to show
        self.assertEqual(runs_in(self.runs_path()).count(job_id), 1)
        self.assertEqual(self.fed.ran_at(job_id), [B])
        report = self.report(B, job_id)
        self.assertEqual((report["NODE"], report.get("TRACE")), (B, C))

    def test_relay_cut_before_its_last_octet_stores_nothing(self):
        # The connection ends one octet short of the payload: nothing is
        # stored (spec 8.10 step 4, 16.9), so the same RELAY sent whole
        # later is a new job, which runs once.
        job_id, desc = self.append_job(nap=0)
        d = desc.encode("utf-8")
        with self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            c.send(("RELAY %s %d %d HOPS=1 TRACE=%s\r\n"
                    % (job_id, len(d), len(APPEND_SCRIPT), B)).encode()
                   + d + APPEND_SCRIPT[:-1])
            # Let the node read what came before the cut.
            time.sleep(0.5)
        self.fed[A].wait_for_log(r"session disconnected reason=payload-cut")
        self.assertEqual(self.status_code(A, job_id), 550)

        with self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            reply = relay(c, job_id, desc, APPEND_SCRIPT, 1, [B])
            self.assertEqual((reply.code, reply.text),
                             (250, job_id + " accepted"))
        self.assertEqual(self.wait_final(A, [job_id]), {job_id: "done"})
        self.assertEqual(runs_in(self.runs_path()).count(job_id), 1)
        self.assertEqual(self.fed.ran_at(job_id), [A])

    def test_peer_session_vectors(self):
        # proto-spec/vectors/sessions/peer/*.txt on a session with
        # provider-b's certificate ({PEER}) at provider-a ({NODE}).
        self.assertTrue(PEER_VECTORS, "no peer session scripts found")
        cert, key = self.certs.pair(B)
        done = subprocess.run(
            ["/usr/bin/python3", VECTOR_RUNNER, "--host", "127.0.0.1",
             "--port", str(self.fed[A].tls_port), "--tls",
             "--ca", self.certs.ca, "--cert", cert, "--key", key,
             "--peer", B] + PEER_VECTORS,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=120)
        report = done.stdout.decode("utf-8", "replace")
        for path in PEER_VECTORS:
            with self.subTest(script=os.path.basename(path)):
                self.assertIn("pass %s\n" % os.path.basename(path), report,
                              report)
        self.assertEqual(done.returncode, 0,
                         report + done.stderr.decode()[-2000:])

    def check_peer_verbs_refused(self, connect, who):
        """CAPACITY, RELAY and RETURN each get 530 on a session from
        `connect()`; RELAY and RETURN close it; its HELLO announces none
        of them; nothing is stored."""
        job_id, desc = self.append_job(nap=0)
        with connect() as c:
            c.hello()
            reply = c.command("CAPACITY")
            self.assertEqual((reply.code, reply.text),
                             (530, "CAPACITY is for authenticated peers"),
                             who)
            self.assertEqual(c.command("NOOP").code, 250,
                             "%s: the session did not go on" % who)
            caps = capabilities(c.hello())
            for keyword in ("RELAY", "CAPACITY", "RETURN"):
                self.assertNotIn(keyword, caps, who)
        with connect() as c:
            c.hello()
            reply = relay(c, job_id, desc, APPEND_SCRIPT, 1, [B],
                          payload=False)
            self.assertEqual((reply.code, reply.text),
                             (530, "RELAY is for authenticated peers"), who)
            self.assertTrue(c.is_closed(), "%s: RELAY 530 did not close"
                            % who)
        with connect() as c:
            c.hello()
            reply = return_result(c, job_id, done_report(job_id, B),
                                  payload=False)
            self.assertEqual((reply.code, reply.text),
                             (530, "RETURN is for authenticated peers"), who)
            self.assertTrue(c.is_closed(), "%s: RETURN 530 did not close"
                            % who)
        self.assertEqual(self.status_code(A, job_id), 550, who)

    def test_peer_verbs_need_a_peer_certificate(self):
        a = self.fed[A]
        cases = [
            ("plain listener", lambda: a.plain_client()),
            ("TLS without certificate", lambda: self.fed.customer(A)),
            ("certificate of another authority naming %s" % B,
             lambda: self.fed.peer_client(A, B, other_authority=True)),
            ("federation certificate of %s, no peer" % OUTSIDER,
             lambda: self.fed.peer_client(A, OUTSIDER)),
        ]
        for who, connect in cases:
            with self.subTest(who):
                self.check_peer_verbs_refused(connect, who)

        # The same verb with provider-b's own certificate is answered.
        with self.fed.peer_client(A, B) as c:
            c.hello(B)
            self.assertEqual(c.command("CAPACITY").code, 250)

    def test_return_of_a_job_not_relayed_to_the_sender_is_refused(self):
        # A perl job handed in at provider-a ran at provider-c.
        perl_id, perl_desc = self.append_job(runtime="perl")
        own_id, own_desc = self.append_job(nap=0)
        with self.fed.customer(A) as c:
            c.hello()
            self.hand_in(c, perl_id, perl_desc, PERL_SCRIPT)
        self.assertEqual(self.wait_final(A, [perl_id]), {perl_id: "done"})
        self.assertEqual(self.report(A, perl_id)["NODE"], C)
        _, perl_out, _ = self.result(A, perl_id)
        # One provider-a ran itself (its slot is free again).
        with self.fed.customer(A) as c:
            c.hello()
            self.hand_in(c, own_id, own_desc)
        self.assertEqual(self.wait_final(A, [own_id]), {own_id: "done"})
        own_node = self.report(A, own_id)["NODE"]
        unknown_id = new_job_id()

        with self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            for job_id in (perl_id, unknown_id):
                reply = return_result(c, job_id, done_report(job_id, B),
                                      b"forged\n")
                self.assertEqual((reply.code, reply.text),
                                 (550, "no job %s was relayed to %s"
                                  % (job_id, B)))
        if own_node == A:
            with self.fed.peer_client(A, as_peer=C) as c:
                c.hello(C)
                reply = return_result(c, own_id, done_report(own_id, C),
                                      b"forged\n")
                self.assertEqual(reply.code, 550, reply)

        # From the peer it was relayed to: already stored, nothing changes.
        with self.fed.peer_client(A, as_peer=C) as c:
            c.hello(C)
            reply = return_result(c, perl_id, done_report(perl_id, C),
                                  b"forged\n")
            self.assertEqual((reply.code, reply.text),
                             (250, perl_id + " result already stored"))
        fields, out, _ = self.result(A, perl_id)
        self.assertEqual((fields["NODE"], out), (C, perl_out))


if __name__ == "__main__":
    unittest.main()
