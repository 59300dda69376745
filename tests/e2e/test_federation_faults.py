#!/usr/bin/python3
"""The federation (issue 3) when a peer fails: a peer killed with SIGKILL
while jobs are being relayed to it and started again loses no accepted
job, runs each to its end exactly once, and every result reaches the
origin; a job in doubt at a peer that stopped answering goes to that
peer only; results owed to an origin that was killed reach it after its
restart; a job for a runtime that only a peer runs, handed in while that
peer is down, is accepted and runs when it comes back (and is refused
with 451 while the peer has never been seen).
"""

import os
import re
import signal
import time
import unittest

import federation
from federation import (APPEND_SCRIPT, BASH, NAMES, PERL, PERL_SCRIPT,
                        PYTHON)

A, B, C = NAMES

# Only provider-b and provider-c run the runtime `work`: every such job
# handed in at provider-a is relayed.
KILL_NODES = {
    A: {"limits": {"slots": 1}},
    B: {"limits": {"slots": 2},
        "runtimes": {"bash": BASH, "work": BASH}},
    C: {"limits": {"slots": 2},
        "runtimes": {"bash": BASH, "work": BASH}},
}
# Only provider-c runs perl.
DOWN_NODES = {
    A: {"limits": {"slots": 1}},
    B: {"limits": {"slots": 1}},
    C: {"limits": {"slots": 1},
        "runtimes": {"bash": BASH, "python": PYTHON, "perl": PERL}},
}
DOWN_SECONDS = 2.5
# PERL_SCRIPT after a nap of $ARGV[2] seconds.
PERL_NAP_SCRIPT = b"select(undef, undef, undef, $ARGV[2]);\n" + PERL_SCRIPT

# provider-b is played by the test (federation.FakePeer); it and
# provider-c run `work`, provider-a does not. Jobs may be larger than the
# receive buffers of a link, so that one can be cut short.
BIG_JOB_BYTES = 8 * 1024 * 1024
FAKE_NODES = {
    A: {"limits": {"slots": 1, "max_job_bytes": BIG_JOB_BYTES}},
    B: None,
    C: {"limits": {"slots": 2, "max_job_bytes": BIG_JOB_BYTES},
        "runtimes": {"bash": BASH, "work": BASH}},
}
# How long the back-off test watches the RELAYs of one job: waits of 1, 2
# and 4 s fit, and a fixed 1 s wait would make about 8.
BACK_OFF_WATCH_SECONDS = 8


class PeerFaultTest(federation.FederationTestCase):

    def hand_in_all(self, name, jobs, script=APPEND_SCRIPT):
        with self.fed.customer(name) as c:
            c.hello()
            for job_id, desc in jobs:
                self.hand_in(c, job_id, desc, script)

    def held_by(self, name, ids, peer):
        """The ids that node `name` reports relayed to `peer`."""
        out = []
        with self.fed.customer(name) as c:
            c.hello()
            for job_id in ids:
                fields = c.command("STATUS " + job_id).fields()
                if (fields.get("STATE") == "relayed"
                        and fields.get("RELAYED-TO") == peer):
                    out.append(job_id)
        return out

    def test_peer_killed_while_jobs_are_relayed_to_it_loses_none(self):
        self.federation(KILL_NODES)
        a, b = self.fed[A], self.fed[B]

        # More jobs than provider-b and provider-c have slots: provider-a
        # is still relaying when provider-b dies.
        before = [self.append_job(nap=1, runtime="work") for _ in range(8)]
        self.hand_in_all(A, before)
        b.wait_for_log(r"\S+ job started", timeout=15)
        self.fed.kill(B)
        b_had = self.held_by(A, [j for j, _ in before], B)

        # Jobs handed in while it is down, then it comes back on the same
        # configuration and spool.
        after = [self.append_job(nap=1, runtime="work") for _ in range(4)]
        self.hand_in_all(A, after)
        time.sleep(DOWN_SECONDS)
        b.start()

        # Not vacuous: provider-b held jobs, or had some in doubt, when it
        # died (those must run there, below).
        in_doubt_at_kill = set(re.findall(
            r"(\S+) job relay-failed peer=%s\b.*\bresult=in-doubt" % B,
            a.log_text()))
        self.assertTrue(b_had or in_doubt_at_kill, "provider-b held no"
                        " job and had none in doubt when it was killed")

        ids = [j for j, _ in before + after]
        states = self.wait_final(A, ids, seconds=45)
        self.assertEqual(set(states.values()), {"done"}, states)
        in_doubt = set(re.findall(r"(\S+) job relay-failed peer=%s\b"
                                  r".*\bresult=in-doubt" % B,
                                  a.log_text()))
        for job_id in ids:
            fields, out, err = self.result(A, job_id)
            self.assertIn(fields["NODE"], (B, C), fields)
            self.assertEqual(fields.get("RELAYED-TO"), fields["NODE"])
            self.assertEqual(self.fed.runner_by_folder(out), fields["NODE"],
                             (fields, out))
            self.assertEqual(out, b"%s ran in " % job_id.encode()
                             + out.split(b" ran in ", 1)[1])
            if job_id in b_had or job_id in in_doubt:
                self.assertEqual(fields["NODE"], B, "job %s was in %s's"
                                 " custody (or in doubt) but ran at %s"
                                 % (job_id, B, fields["NODE"]))
            self.fed[fields["NODE"]].mail(job_id)
        self.assert_ran_once_each(ids)

    def test_job_handed_in_at_two_origins_comes_back_to_both(self):
        # The same perl job (same id, same octets) handed in at provider-a
        # and, while it runs at provider-c, at provider-b: provider-c
        # answers provider-b's RELAY "already accepted" and records,
        # durably, that it owes provider-b the result too (spec 8.10 step
        # 10, 16.8). It is killed before the job ends: after its restart
        # the job runs again and both origins get the result.
        self.federation(DOWN_NODES)
        c = self.fed[C]
        job_id, desc = self.append_job(nap=3, runtime="perl")
        self.hand_in_all(A, [(job_id, desc)], PERL_NAP_SCRIPT)
        self.wait_for_state(A, job_id, "relayed")
        c.wait_for_log(r"%s job started" % job_id)

        self.hand_in_all(B, [(job_id, desc)], PERL_NAP_SCRIPT)
        self.wait_for_state(B, job_id, "relayed")
        self.assertEqual(self.report(C, job_id)["STATE"], "running")
        self.fed.kill(C)
        c.start()

        code, out, err = self.fed[B].cloud_submit("--result", job_id,
                                                  "--wait", timeout=30)
        self.assertEqual(code, 0, err)
        self.assertEqual(self.wait_final(A, [job_id]), {job_id: "done"})
        for origin in (A, B):
            fields, got, _ = self.result(origin, job_id)
            self.assertEqual((fields["STATE"], fields["NODE"],
                              fields.get("RELAYED-TO")), ("done", C, C),
                             origin)
            self.assertRegex(got, rb"^%s ran in \S+ with perl\n\Z"
                             % job_id.encode())
        self.assert_ran_once_each([job_id])
        self.assertRegex(c.log_text(), r"%s result owed to=%s\b" % (job_id, B))
        self.assertFalse(os.path.exists(self.fed[A].mail_path(job_id)))
        self.assertFalse(os.path.exists(self.fed[B].mail_path(job_id)))

    def test_job_in_doubt_at_a_frozen_peer_goes_to_that_peer_only(self):
        # provider-b stops answering (SIGSTOP) just before a job is relayed
        # to it (it wins the tie with provider-c by name): the RELAY gets
        # no reply, the job is in doubt there, and must wait for it even
        # though provider-c is free (spec 16.7).
        # No CAPACITY ask between the freeze and the RELAY (one command
        # at a time on a link): the interval is longer than the test.
        self.federation(KILL_NODES, relay_timeout_seconds=2,
                        capacity_interval_seconds=60)
        a, b = self.fed[A], self.fed[B]
        b.process.send_signal(signal.SIGSTOP)
        job_id, desc = self.append_job(nap=0, runtime="work")
        self.hand_in_all(A, [(job_id, desc)])

        a.wait_for_log(r"%s job relay-failed peer=%s\b.*\bresult=in-doubt"
                       % (job_id, B), timeout=15)
        time.sleep(2)  # time enough to take it elsewhere, were it wrong
        report = self.report(A, job_id)
        self.assertNotEqual(report.get("RELAYED-TO"), C, report)
        self.assertEqual(self.fed.ran_at(job_id), [],
                         "a job in doubt at provider-b ran elsewhere")

        # provider-b crashes and comes back: the same RELAY again.
        self.fed.kill(B)
        b.start()
        self.assertEqual(self.wait_final(A, [job_id]), {job_id: "done"})
        fields, out, _ = self.result(A, job_id)
        self.assertEqual((fields["NODE"], fields.get("RELAYED-TO")), (B, B))
        self.assertEqual(self.fed.runner_by_folder(out), B)
        self.assert_ran_once_each([job_id])

    def test_origin_killed_gets_every_result_after_its_restart(self):
        # Jobs relayed from provider-a finish while it is down: their
        # runners keep the results they owe it and give them back when it
        # is up again (spec 16.8, 16.9).
        self.federation(KILL_NODES)
        a = self.fed[A]
        jobs = [self.append_job(nap=1, runtime="work") for _ in range(4)]
        self.hand_in_all(A, jobs)
        ids = [j for j, _ in jobs]
        for job_id in ids:
            self.wait_for_state(A, job_id, "relayed")
        self.fed.kill(A)
        for job_id in ids:
            runner = self.wait_started_somewhere(job_id)
            self.fed[runner].wait_for_log(r"%s job finished" % job_id)
        a.start()
        self.fed.wait_links()

        states = self.wait_final(A, ids)
        self.assertEqual(set(states.values()), {"done"}, states)
        for job_id in ids:
            fields, out, _ = self.result(A, job_id)
            self.assertEqual(self.fed.runner_by_folder(out), fields["NODE"])
            self.assertIn(fields["NODE"], (B, C))
        self.assert_ran_once_each(ids)
        self.assertEqual([n for n in ids
                          if os.path.exists(a.mail_path(n))], [],
                         "the origin mailed results it did not produce")

    def wait_started_somewhere(self, job_id, timeout=15):
        deadline = time.monotonic() + timeout
        while not self.fed.ran_at(job_id):
            if time.monotonic() > deadline:
                self.fail("job %s started nowhere" % job_id)
            time.sleep(0.05)
        return self.fed.ran_at(job_id)[0]

    def test_job_for_a_down_peers_runtime_runs_when_it_is_back(self):
        self.federation(DOWN_NODES, start=False)
        self.fed.start(A, B)

        # provider-c has never been seen: nobody knows who runs perl yet.
        job_id, desc = self.append_job(runtime="perl")
        with self.fed.customer(A) as c:
            c.hello()
            reply = c.submit(job_id, desc, PERL_SCRIPT)
        self.assertEqual((reply.code, reply.text),
                         (451, "%s not stored: no reachable provider offers"
                          " runtime perl now; try again later" % job_id))
        self.assertEqual(self.status_code(A, job_id), 550)

        # Seen once, then down.
        self.fed.start(C)
        self.fed.stop(C)
        self.fed.wait_link(A, C, "down")
        self.fed.wait_link(B, C, "down")

        # Accepted at both other nodes; they wait.
        at_a = self.append_job(runtime="perl")
        at_b = self.append_job(runtime="perl")
        code, out, err = self.fed[A].submit(PERL_SCRIPT, at_a[1],
                                            "--job-id", at_a[0])
        self.assertEqual((code, out), (0, at_a[0].encode() + b"\n"), err)
        self.hand_in_all(B, [at_b], PERL_SCRIPT)
        time.sleep(1.5)
        for name, (job_id, _) in ((A, at_a), (B, at_b)):
            self.assertEqual(self.report(name, job_id)["STATE"], "queued",
                             "at %s" % name)

        # provider-c comes back: both run there, the results come back.
        self.fed.start(C)
        code, out, err = self.fed[A].cloud_submit("--result", at_a[0],
                                                  "--wait")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.fed.runner_by_folder(out), C, out)
        self.assertEqual(self.wait_final(B, [at_b[0]]), {at_b[0]: "done"})
        for name, (job_id, _) in ((A, at_a), (B, at_b)):
            fields, out, _ = self.result(name, job_id)
            self.assertEqual((fields["STATE"], fields["NODE"],
                              fields.get("RELAYED-TO")), ("done", C, C))
            self.assertRegex(out, rb"^%s ran in \S+ with perl\n\Z"
                             % job_id.encode())
        self.assert_ran_once_each([at_a[0], at_b[0]])


class MisbehavingPeerTest(federation.FederationTestCase):
    """provider-b played by the test: a peer that refuses RELAY for now,
    cuts a RELAY short, or answers CAPACITY with a reply that ends the
    link."""

    def fake_federation(self, peers=None, **fake):
        fed = self.federation(FAKE_NODES, peers=peers, start=False)
        b = federation.FakePeer(self.certs, B, fed.addresses[B][0], **fake)
        self._closers.append(b.close)
        fed.start(*[n for n in (A, C) if fed.peers.get(n)])
        fed.wait_link(A, B, "up")
        return b

    def hand_in(self, job_id, desc, script=APPEND_SCRIPT):
        with self.fed.customer(A) as c:
            c.hello()
            super().hand_in(c, job_id, desc, script)

    def test_relay_refused_for_now_is_tried_again_with_growing_waits(self):
        # provider-b alone runs `work` for provider-a, shows room, and
        # answers every RELAY 452: provider-a sends the job again after 1,
        # 2, 4 s (spec 16.7), not at each CAPACITY that shows room; the
        # job stays queued there, neither lost nor failed.
        b = self.fake_federation(peers={A: [B]})
        job_id, desc = self.append_job(nap=0, runtime="work")
        self.hand_in(job_id, desc)
        time.sleep(BACK_OFF_WATCH_SECONDS)

        times = [t for t, _, arg in b.commands("RELAY") if arg == job_id]
        gaps = [round(t2 - t1, 2) for t1, t2 in zip(times, times[1:])]
        self.assertIn(len(times), (3, 4, 5), "%d RELAYs in %d s, apart by"
                      " %r ..." % (len(times), BACK_OFF_WATCH_SECONDS,
                                   gaps[:8]))
        for i, gap in enumerate(gaps):
            self.assertGreater(gap, 0.8 * 2 ** i, gaps)
            self.assertLess(gap, 2 ** i + 1.5, gaps)
        self.assertEqual(self.report(A, job_id)["STATE"], "queued")
        self.assertRegex(self.fed[A].log_text(),
                         r"%s job relay-failed peer=%s result=tempfail "
                         r"reply=\"452 .*\" retry_s=2\b" % (job_id, B))

    def test_relay_cut_before_its_last_octet_stays_with_the_sender(self):
        # provider-b (more room than provider-c: chosen first) reads the
        # RELAY line and a little of its 6 MB payload, then drops the
        # connection: the job never left whole, so it is not in doubt;
        # provider-a keeps it and places it again, at provider-c, where
        # it runs exactly once (spec 16.9).
        b = self.fake_federation(relay_action=("cut", 1000),
                                 max_job_bytes=BIG_JOB_BYTES)
        job_id, desc = self.append_job(nap=0, runtime="work")
        script = APPEND_SCRIPT + (b"#" + b"x" * 999 + b"\n") * 6000
        self.hand_in(job_id, desc, script)

        self.assertEqual(self.wait_final(A, [job_id]), {job_id: "done"})
        fields, out, _ = self.result(A, job_id)
        self.assertEqual((fields["NODE"], fields.get("RELAYED-TO")), (C, C))
        self.assertEqual(self.fed.runner_by_folder(out), C)
        self.assertEqual([arg for _, _, arg in b.commands("RELAY")],
                         [job_id])
        log = self.fed[A].log_text()
        self.assertRegex(log, r"%s job relay-failed peer=%s "
                         r"result=tempfail" % (job_id, B))
        self.assertNotRegex(log, r"%s job relay-failed .*in-doubt" % job_id)
        self.assert_ran_once_each([job_id])

    def check_capacity_reply_ends_link(self, reply):
        # The first CAPACITY is answered (the link comes up), every later
        # one with `reply`: provider-a takes the link down at once (spec
        # 16.10), and a new link, which fails the same way before it is
        # up, is tried again with growing waits.
        self.fake_federation(peers={A: [B]}, capacity_reply=reply)
        a = self.fed[A]
        self.fed.wait_link(A, B, "down", timeout=5)
        self.assertRegex(a.log_text(), r"peer down name=%s reason=\"it "
                         r"answered %s" % (B, reply[:3]))
        time.sleep(3)
        self.assertEqual(self.fed.link_state(A, B), "down")
        self.assertRegex(a.log_text(), r"peer unreachable name=%s .*"
                         r"CAPACITY answered %s" % (B, reply[:3]))

    def test_capacity_answered_530_takes_the_link_down(self):
        self.check_capacity_reply_ends_link(
            "530 CAPACITY is for authenticated peers")

    def test_capacity_answered_552_takes_the_link_down(self):
        self.check_capacity_reply_ends_link(
            "552 job of 1 octets exceeds MAX-JOB-BYTES 0")


class LinkTrustTest(federation.FederationTestCase):
    """Links are made only to a peer whose certificate passes for it
    (spec 16.2, 16.3): named by it, chained to the authority or pinned."""

    NEVER_UP_SECONDS = 3  # several reconnect attempts

    def assert_never_up(self, name, peer):
        deadline = time.monotonic() + self.NEVER_UP_SECONDS
        while time.monotonic() < deadline:
            self.assertNotEqual(self.fed.link_state(name, peer), "up",
                                "%s took %s for a peer" % (name, peer))
            time.sleep(0.1)

    def test_link_to_a_certificate_that_names_another_node_is_not_made(self):
        # provider-a's peer provider-b is configured at provider-c's
        # address: provider-c's certificate, valid for the authority,
        # does not name provider-b.
        self.federation({A: {}, C: {"runtimes": {"bash": BASH,
                                                  "perl": PERL}}},
                        peers={A: [B], C: []},
                        peer_settings={(A, B): {"address_of": C}},
                        start=False)
        self.fed.start(wait=False)
        self.fed[C].wait_for_log(r"session connected", timeout=10)
        self.assert_never_up(A, B)
        with self.subTest("logged as an error of configuration"):
            # Spec 16.3 (SHOULD); the design: "logged as error".
            self.assertRegex(self.fed[A].log_text(),
                             r"(?m) error .*\b%s\b" % B)
        # The link was closed before any command: provider-c heard no
        # HELLO from provider-a.
        self.assertNotRegex(self.fed[C].log_text(),
                            r"session hello client=%s\b" % A)
        # Nobody who answered HELLO runs perl, and provider-b never did:
        # a perl job is refused for now.
        job_id, desc = self.append_job(runtime="perl")
        with self.fed.customer(A) as c:
            c.hello()
            reply = c.submit(job_id, desc, PERL_SCRIPT)
        self.assertEqual(reply.code, 451, reply)

    def test_pinned_peers_without_an_authority(self):
        # No authority: provider-a pins provider-b right (two spellings of
        # the fingerprint) and provider-c wrong.
        fp = {n: federation.fingerprint(self.certs.pair(n)[0])
              for n in NAMES}
        settings = {
            (A, B): {"fingerprint": fp[B]},
            (A, C): {"fingerprint": fp[B]},
            (B, A): {"fingerprint": "sha256:"
                     + fp[A][len("sha256:"):].replace(":", "").lower()},
            (C, A): {"fingerprint": fp[A]},
        }
        self.federation(KILL_NODES, peers={A: [B, C], B: [A], C: [A]},
                        authority=False, peer_settings=settings,
                        start=False)
        self.fed.start(wait=False)
        self.fed.wait_link(A, B, "up")
        self.fed.wait_link(B, A, "up")
        self.assert_never_up(A, C)
        self.assertNotEqual(self.fed.link_state(C, A), "up",
                            "provider-c's link counts as up, yet provider-a"
                            " does not take its certificate")

        # Jobs flow between the pinned pair.
        job_id, desc = self.append_job(nap=0, runtime="work")
        code, out, err = self.fed[A].submit(APPEND_SCRIPT, desc, "--wait",
                                            "--job-id", job_id)
        self.assertEqual(code, 0, err)
        self.assertEqual(self.fed.runner_by_folder(out), B)

        # Sessions: provider-b's certificate passes; provider-c's (wrong
        # pin) and one naming provider-b from another authority do not.
        with self.fed.peer_client(A, as_peer=B) as c:
            c.hello(B)
            self.assertEqual(c.command("CAPACITY").code, 250)
        for who, connect in (
                ("%s, pinned otherwise" % C,
                 lambda: self.fed.peer_client(A, as_peer=C)),
                ("%s from another authority" % B,
                 lambda: self.fed.peer_client(A, B, other_authority=True))):
            with self.subTest(who), connect() as c:
                c.hello()
                reply = c.command("CAPACITY")
                self.assertEqual((reply.code, reply.text),
                                 (530, "CAPACITY is for authenticated"
                                  " peers"), who)


if __name__ == "__main__":
    unittest.main()
