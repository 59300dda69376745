#!/usr/bin/python3
"""Result mail through a real mail server: a node whose [mail] table names
an SMTP server (smtp_server.py, on loopback) delivers each job's result
mail there, and the message the server stored is the one the node
queued, octet for octet, and carries the job's output back byte for
byte, in lines of at most 998 octets ending CRLF. Over STARTTLS with
AUTH PLAIN or LOGIN, over implicit TLS, with AUTH in plaintext on
loopback only when allowed, to a server that answers only HELO, whose
replies come in pieces, that slips plaintext in after its 220 to
STARTTLS, or that is slow to answer the message. A 421 at greeting, a
451 to DATA or a server that is down delays the mail, until its
lifetime is over; a 550 ends it at once, and the job's STATUS says so;
each session the server can still hear ends with QUIT. STARTTLS
required means never plaintext, and a certificate for another name is
never used. A mail waiting in the queue survives a restart. Credentials
never reach the log; a customer's reply_to or args add no header and no
recipient. EHLO names the machine's domain or its address literal.

Each test starts its own server and node (first_retry_seconds = 1).
Run with /usr/bin/python3: smtp_server.py imports Debian's aiosmtpd.
"""

import atexit
import base64
import email
import email.policy
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import unittest

import harness
import smtp_server
from harness import descriptor, new_job_id
from smtp_server import PASSWORD, USERNAME, PostfixServer, SmtpServer

SENDER = "cloud-node@e2e.example"  # the harness's [mail] from
HELO_NAME = "node.e2e.example"
FIRST_RETRY_SECONDS = 1
SERVER_TIMEOUT_SECONDS = 5
DELIVERY_SECONDS = 15    # a job's end to its message at a working server
STATUS_SECONDS = 10
# A server that is down, or refuses, gets this long to be tried again
# (retries at 1, 2, 4 s...).
RETRIES_SECONDS = 4

# A lifetime a test can watch run out.
SHORT_LIFETIME_SECONDS = 2
# A server this slow after the final dot is still waited for.
SLOW_DATA_SECONDS = 4

MAX_LINE_OCTETS = 998
BAD_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")

# Output that the summary can show inline: '.' alone on a line, lines
# starting with '.', UTF-8, and a last line "." with no newline after
# it, which puts a lone "." line into the message itself.
INLINE_OUTPUT = ("first line\n"
                 ".\n"
                 "..two dots\n"
                 ". dot space\n"
                 ".leading\n"
                 "UTF-8: é 漢字 ✓\n"
                 "\n"
                 ".").encode("utf-8")
# Output that must be attached: a 5,000-character line, NUL, 0xFF, a
# lone CR, CRLF ends and a dot line among them.
ATTACHED_OUTPUT = (b"x" * 5000 + b"\n"
                   b"nul \x00 ff \xff lone\rcr\n"
                   b".\n"
                   b"..\n"
                   b"crlf\r\n.\r\n"
                   + "é漢字\n".encode("utf-8"))
ATTACHED_ERRORS = b"error line\n.\n.. error dots\n"

# What a customer may try, to reach other recipients or add headers.
SMUGGLED = ("\r\n.\r\nMAIL FROM:<evil@attacker.example>\r\n"
            "RCPT TO:<evil@attacker.example>\r\nDATA\r\n"
            "Subject: smuggled\r\n\r\nhi\r\n.\r\n")
EVIL_REPLY_TOS = [
    "victim@example.org\r\nBcc: evil@attacker.example",
    "victim@example.org\nBcc: evil@attacker.example",
    "victim@example.org>\r\nRCPT TO:<evil@attacker.example",
    "victim@example.org, evil@attacker.example",
    "victim@example.org> NOTIFY=SUCCESS ORCPT=rfc822;evil@attacker.example",
    "<evil@attacker.example> victim@example.org",
]
EVIL_ARGS = ["x\r\nBcc: evil@attacker.example",
             "y\nTo: evil@attacker.example\n\n",
             SMUGGLED]


def output_script(data):
    """A bash script that writes `data` to stdout, octet for octet."""
    return (b"base64 -d <<'EOF'\n" +
            base64.encodebytes(data) + b"EOF\n")


def both_outputs_script(out, err):
    return (b"base64 -d <<'EOF'\n" + base64.encodebytes(out) + b"EOF\n" +
            b"base64 -d >&2 <<'EOF'\n" + base64.encodebytes(err) + b"EOF\n")


def machine_domain():
    """The name a node without helo_name gives in EHLO, as it finds it:
    the host name, or its canonical name, when that has a dot; None when
    neither has (the node then gives its address literal)."""
    name = socket.gethostname()
    if "." not in name:
        try:
            name = socket.getaddrinfo(name, None,
                                      flags=socket.AI_CANONNAME)[0][3] or name
        except OSError:
            pass
    if "." in name and not name.startswith("localhost"):
        return name
    return None


def steps_by_connection(server):
    """{connection number: [event, ...]} from the server's events."""
    steps = {}
    for number, what, _ in server.events:
        steps.setdefault(number, []).append(what)
    return steps


class MailNode(harness.Node):
    """A node whose [mail] table also holds `mail_lines`."""

    def __init__(self, mail_lines, **kw):
        self.mail_lines = list(mail_lines)
        super().__init__(**kw)

    def _write_config(self):
        super()._write_config()
        with open(self.config_path, encoding="utf-8") as f:
            text = f.read()
        if text.count("\n[mail]\n") != 1:
            raise harness.NodeError("no single [mail] table in\n" + text)
        text = text.replace("\n[mail]\n", "\n[mail]\n" +
                            "".join(line + "\n" for line in self.mail_lines))
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(text)

    def queue_path(self, job_id):
        return os.path.join(self.spool_dir, "mail", "queue", job_id + ".eml")

    def failed_path(self, job_id, suffix=".eml"):
        return os.path.join(self.spool_dir, "mail", "failed",
                            job_id + suffix)


class MailTest(harness.NodeTestCase):

    # set-up

    def run(self, result=None):
        """Nodes and servers live for one test; their folders go after the
        harness has shown the logs of a failed test."""
        self.nodes = []
        self.servers = []
        self.folders = []
        result = result or self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before:
                for server in self.servers:
                    sys.stderr.write("\n--- SMTP server %s (events) ---\n%s\n"
                                     % (server.address,
                                        "\n".join(map(repr,
                                                      server.events[-40:]))))
            for node in self.nodes:
                node.close()
            for server in self.servers:
                server.stop()
            if not harness.KEEP_FOLDERS:
                for folder in self.folders:
                    shutil.rmtree(folder, ignore_errors=True)

    def tearDown(self):
        for node in self.nodes:
            if node.process is not None:
                self.assert_node_healthy(node)

    def folder(self, what):
        folder = tempfile.mkdtemp(prefix="cloudproto-e2e-mail-%s-" % what)
        self.folders.append(folder)
        return folder

    def smtp(self, start=True, **options):
        """An SMTP server with the file's certificates; started unless
        start is False (its port is then reserved for later)."""
        if not start and "port" not in options:
            options["port"] = smtp_server.free_port()
        server = SmtpServer(self.folder("smtp"), certs=self.certs(),
                            **options)
        self.servers.append(server)
        return server.start() if start else server

    def postfix(self):
        """Postfix on a port known now, not started, relaying to a sink
        that is."""
        server = PostfixServer(self.folder("postfix"), certs=self.certs())
        self.servers.append(server)
        return server

    _certs = None

    @classmethod
    def certs(cls):
        """The SMTP server's authority: made once, and not the nodes'."""
        if MailTest._certs is None:
            folder = tempfile.mkdtemp(prefix="cloudproto-e2e-smtp-certs-")
            if not harness.KEEP_FOLDERS:
                atexit.register(shutil.rmtree, folder, True)
            smtp_server.make_certificates(folder)
            MailTest._certs = folder
        return MailTest._certs

    def mail_lines(self, server, security="starttls", auth=False,
                   password=PASSWORD, first_retry=FIRST_RETRY_SECONDS,
                   authority=None, server_name=smtp_server.SERVER_NAME,
                   helo_name=HELO_NAME, timeout=SERVER_TIMEOUT_SECONDS,
                   extra=()):
        """[mail] lines for `server`; helo_name None leaves it to the
        node; extra: more lines as they are."""
        q = harness.toml_string
        lines = ["server = %s" % q(server.address),
                 "security = %s" % q(security),
                 "server_name = %s" % q(server_name),
                 "timeout_seconds = %d" % timeout,
                 "first_retry_seconds = %d" % first_retry]
        if helo_name is not None:
            lines.append("helo_name = %s" % q(helo_name))
        if security != "none":
            lines.append("authority = %s" % q(authority or server.ca))
        lines += extra
        if auth:
            path = os.path.join(self.folder("secret"), "smtp-password")
            with open(path, "w") as f:
                f.write(password + "\n")
            os.chmod(path, 0o600)
            lines += ["username = %s" % q(USERNAME),
                      "password_file = %s" % q(path)]
        return lines

    def mail_node(self, server, log_level="info", start=True, **mail):
        node = MailNode(self.mail_lines(server, **mail), log_level=log_level)
        self.nodes.append(node)
        return node.start() if start else node

    # jobs and their reports

    def run_job(self, node, script, reply_to="customer@example.org",
                args=None):
        job_id = new_job_id()
        code, out, err = node.submit(script,
                                     descriptor(reply_to=reply_to, args=args),
                                     "--wait", "--quiet", "--job-id", job_id)
        self.assertEqual(code, 0, err)
        return job_id, out, err

    def status(self, node, job_id):
        with node.tls_client() as c:
            c.hello()
            reply = c.command("STATUS " + job_id)
        self.assertEqual(reply.code, 250, reply)
        return reply.fields()

    def wait_mail_state(self, node, job_id, state, timeout=STATUS_SECONDS):
        """The job's report once its MAIL key says `state`."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.status(node, job_id)
            if report.get("MAIL") == state:
                return report
            if time.monotonic() > deadline:
                self.fail("MAIL of %s is %r, not %r, after %ss: %r"
                          % (job_id, report.get("MAIL"), state, timeout,
                             report))
            time.sleep(0.1)

    def wait_for_file(self, path, timeout=STATUS_SECONDS):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                self.fail("no %s after %ss" % (path, timeout))
            time.sleep(0.05)

    # the message a server stored

    def check_message(self, message, job_id, reply_to):
        """The stored message is well-formed mail for this job, sent
        with the node's sender to reply_to only; returns it parsed."""
        raw = message.data
        self.assertTrue(raw.endswith(b"\r\n"), raw[-200:])
        self.assertIsNone(BAD_LINE_END.search(raw),
                          "a line end other than CRLF at %r"
                          % (BAD_LINE_END.search(raw) and
                             raw[max(0, BAD_LINE_END.search(raw).start()
                                     - 40):][:80]))
        longest = max(len(line) for line in raw.split(b"\r\n"))
        self.assertLessEqual(longest, MAX_LINE_OCTETS)

        self.assertEqual(message.envelope["mail_from"], SENDER)
        self.assertEqual(message.envelope["rcpt_tos"], [reply_to])

        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(parsed.defects, [])
        for part in parsed.walk():
            self.assertEqual(part.defects, [], "defects in a part")
        self.assertEqual([a.addr_spec for a in parsed["To"].addresses],
                         [reply_to])
        self.assertEqual(str(parsed["X-Cloudproto-Job"]), job_id)
        for name in ("Bcc", "Cc", "Reply-To", "Sender"):
            self.assertIsNone(parsed[name], "a %s field" % name)
        for name in ("From", "To", "Subject", "Message-ID", "Date"):
            self.assertEqual(len(parsed.get_all(name) or []), 1, name)
        return parsed

    def summary(self, parsed):
        for part in parsed.walk():
            if (part.get_content_type() == "text/plain" and
                    part.get_filename() is None):
                return part.get_payload(decode=True)
        self.fail("no summary part")

    def attachment(self, parsed, filename):
        for part in parsed.walk():
            if part.get_filename() == filename:
                return part.get_payload(decode=True)
        self.fail("no attachment %s" % filename)

    def assert_output(self, parsed, name, data):
        """`data` comes back from the mail, attached or inline."""
        for part in parsed.walk():
            if part.get_filename() == name + ".txt":
                self.assertEqual(part.get_payload(decode=True), data)
                return
        self.assert_inline(parsed, name, data)

    def assert_inline(self, parsed, name, data):
        """The summary shows `data` whole after its heading. The summary's
        own lines end CRLF (the canonical form of text); the output's
        octets come back exactly as the job wrote them."""
        text = self.summary(parsed)
        heading = b"---- %s, %d bytes ----\r\n" % (name.encode(), len(data))
        at = text.find(heading)
        self.assertGreaterEqual(at, 0, "no %r in\n%r" % (heading, text))
        shown = text[at + len(heading):]
        self.assertEqual(shown[:len(data)], data)
        rest = shown[len(data):]
        if not data.endswith(b"\n"):
            self.assertTrue(rest.startswith(b"\r\n"), rest[:40])
            rest = rest[2:]
        self.assertTrue(rest.startswith(b"---- end of %s ----"
                                        % name.encode()), rest[:60])

    def delivered(self, server, count=1, timeout=DELIVERY_SECONDS):
        return server.wait_for_messages(count, timeout)

    def secrets_absent(self, node, report=None):
        """Neither the password nor an AUTH argument that holds it, in
        the log or the job's report."""
        secrets = [PASSWORD,
                   base64.b64encode(("\0%s\0%s" % (USERNAME, PASSWORD))
                                    .encode()).decode(),
                   base64.b64encode(PASSWORD.encode()).decode()]
        log = node.log_text()
        for secret in secrets:
            self.assertNotIn(secret, log, "a credential in the log")
            if report is not None:
                self.assertNotIn(secret, repr(report))

    # output byte for byte

    def test_output_travels_byte_for_byte(self):
        server = self.smtp(security="starttls")
        node = self.mail_node(server)

        inline_id, out, _ = self.run_job(node, output_script(INLINE_OUTPUT),
                                         reply_to="inline@example.org")
        self.assertEqual(out, INLINE_OUTPUT)
        attached_id, out, err = self.run_job(
            node, both_outputs_script(ATTACHED_OUTPUT, ATTACHED_ERRORS),
            reply_to="attached@example.org")
        self.assertEqual((out, err), (ATTACHED_OUTPUT, ATTACHED_ERRORS))

        messages = self.delivered(server, 2)
        by_job = {}
        for message in messages:
            job = email.message_from_bytes(message.data)["X-Cloudproto-Job"]
            by_job[job] = message
        self.assertEqual(sorted(by_job), sorted([inline_id, attached_id]))

        # Inline: a lone "." line went through DATA, so it was stuffed
        message = by_job[inline_id]
        self.assertIn(b"\r\n.\r\n", message.data)
        parsed = self.check_message(message, inline_id, "inline@example.org")
        self.assert_inline(parsed, "stdout", INLINE_OUTPUT)

        message = by_job[attached_id]
        parsed = self.check_message(message, attached_id,
                                    "attached@example.org")
        self.assertEqual(self.attachment(parsed, "stdout.txt"),
                         ATTACHED_OUTPUT)
        self.assertEqual(self.attachment(parsed, "stderr.txt"),
                         ATTACHED_ERRORS)

        for message in messages:
            self.assertTrue(message.envelope["tls"])
            self.assertEqual(message.envelope["helo"], HELO_NAME)
        for job_id in (inline_id, attached_id):
            self.wait_mail_state(node, job_id, "sent")
            self.assertFalse(os.path.exists(node.queue_path(job_id)))
        node.wait_for_log(r"mail delivered result=ok", count=2)

    def test_stored_message_is_the_queued_message(self):
        """The node's client changes nothing: aiosmtpd's server stores
        DATA's content unstuffed and adds nothing to it (Received: and
        X-Peer: come from its Message handler, which smtp_server.py does
        not use), so the stored octets are the queued .eml's."""
        server = self.smtp(start=False, security="starttls")
        node = self.mail_node(server)
        queued = {}
        for script, reply_to in (
                (output_script(INLINE_OUTPUT), "inline@example.org"),
                (both_outputs_script(ATTACHED_OUTPUT, ATTACHED_ERRORS),
                 "attached@example.org")):
            job_id, _, _ = self.run_job(node, script, reply_to=reply_to)
            self.wait_for_file(node.queue_path(job_id))
            with open(node.queue_path(job_id), "rb") as f:
                queued[job_id] = f.read()
        # Lines that DATA must stuff are in the inline one as they are
        inline = list(queued.values())[0]
        for line in (b"\r\n.\r\n", b"\r\n..two dots", b"\r\n.leading"):
            self.assertIn(line, inline)

        server.start()
        messages = self.delivered(server, 2,
                                  timeout=DELIVERY_SECONDS + RETRIES_SECONDS)
        stored = {email.message_from_bytes(m.data)["X-Cloudproto-Job"]:
                  m.data for m in messages}
        self.assertEqual(sorted(stored), sorted(queued))
        for job_id, data in queued.items():
            got = stored[job_id]
            if got != data:
                at = next((i for i, (a, b) in enumerate(zip(got, data))
                           if a != b), min(len(got), len(data)))
                self.fail("%s: stored %d octets, queued %d, first "
                          "difference at %d: %r / %r"
                          % (job_id, len(got), len(data), at,
                             got[max(0, at - 20):at + 20],
                             data[max(0, at - 20):at + 20]))
            self.wait_mail_state(node, job_id, "sent")

    def test_delivered_through_postfix(self):
        """Postfix, a server that wants a domain name or an address
        literal in EHLO, takes both mails over STARTTLS and passes them on
        as the node queued them, under its own Received: field."""
        server = self.postfix()
        node = self.mail_node(server, helo_name=None)
        queued = {}
        for script, reply_to in (
                (output_script(INLINE_OUTPUT), "inline@example.org"),
                (both_outputs_script(ATTACHED_OUTPUT, ATTACHED_ERRORS),
                 "attached@example.org")):
            job_id, _, _ = self.run_job(node, script, reply_to=reply_to)
            self.wait_for_file(node.queue_path(job_id))
            with open(node.queue_path(job_id), "rb") as f:
                queued[job_id] = (f.read(), reply_to)

        server.start()
        messages = self.delivered(server, 2,
                                  timeout=DELIVERY_SECONDS + RETRIES_SECONDS)
        for message in messages:
            data, received = smtp_server.without_received(message.data)
            job_id = email.message_from_bytes(data)["X-Cloudproto-Job"]
            self.assertIn(job_id, queued)
            self.assertEqual(data, queued[job_id][0])
            self.assertIn(b"by %s (Postfix) with ESMTPS"
                          % smtp_server.POSTFIX_HOSTNAME.encode(), received)
            self.assertEqual(message.envelope["rcpt_tos"],
                             [queued[job_id][1]])
            self.assertEqual(message.envelope["mail_from"], SENDER)
            self.wait_mail_state(node, job_id, "sent")
        # Postfix's count of each session's commands: TLS, then QUIT
        sessions = re.findall(r"disconnect from \S+ (ehlo=.*)",
                              server.log_text())
        self.assertIn("ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 "
                      "commands=7", sessions)

    # TLS and AUTH

    def check_auth(self, mechanisms, expected, security="starttls"):
        server = self.smtp(security=security, auth=True,
                           auth_mechanisms=mechanisms)
        node = self.mail_node(server, security=security, auth=True,
                              log_level="trace")
        job_id, _, _ = self.run_job(node, output_script(b"authenticated\n"))
        [message] = self.delivered(server)
        self.check_message(message, job_id, "customer@example.org")
        self.assertEqual((message.envelope["tls"],
                          message.envelope["auth_user"],
                          message.envelope["auth_mechanism"]),
                         (True, USERNAME, expected))
        report = self.wait_mail_state(node, job_id, "sent")
        self.secrets_absent(node, report)

    def test_starttls_and_auth_plain(self):
        self.check_auth(("PLAIN", "LOGIN"), "PLAIN")

    def test_starttls_and_auth_login(self):
        self.check_auth(("LOGIN",), "LOGIN")

    def test_implicit_tls_and_auth(self):
        self.check_auth(("PLAIN", "LOGIN"), "PLAIN", security="tls")

    def test_wrong_password_fails_the_mail_and_is_never_logged(self):
        server = self.smtp(security="starttls", auth=True)
        node = self.mail_node(server, auth=True, password=PASSWORD + "-old",
                              log_level="trace")
        job_id, _, _ = self.run_job(node, output_script(b"no auth\n"))
        report = self.wait_mail_state(node, job_id, "failed")
        self.assertIn("535", report.get("MAIL-ERROR", ""), report)
        self.assertEqual(server.messages(), [])
        log = node.log_text()
        for secret in (PASSWORD + "-old",
                       base64.b64encode(("\0%s\0%s-old" % (USERNAME,
                                                           PASSWORD))
                                        .encode()).decode(),
                       base64.b64encode((PASSWORD + "-old").encode())
                       .decode()):
            self.assertNotIn(secret, log, "a credential in the log")
            self.assertNotIn(secret, repr(report))

    def test_server_certificate_from_another_authority_is_never_used(self):
        # The nodes' authority did not sign the SMTP server's certificate
        server = self.smtp(security="starttls", auth=True)
        node = self.mail_node(server, auth=True, log_level="trace",
                              authority=os.path.join(harness.certificates(),
                                                     "ca.crt"))
        job_id, _, _ = self.run_job(node, output_script(b"unverified\n"))
        time.sleep(RETRIES_SECONDS)
        self.assertEqual(server.messages(), [])
        self.assertNotIn("AUTH", [e[1] for e in server.events])
        self.assertNotIn("MAIL", [e[1] for e in server.events])
        self.assertEqual(self.status(node, job_id).get("MAIL"), "queued")
        self.secrets_absent(node)

    def test_no_starttls_offered_means_never_plaintext(self):
        server = self.smtp(security="none")
        node = self.mail_node(server, security="starttls", auth=True,
                              log_level="trace")
        job_id, _, _ = self.run_job(node, output_script(b"secret output\n"))
        self.wait_for_file(node.queue_path(job_id))
        time.sleep(RETRIES_SECONDS)
        self.assertGreaterEqual(server.connections, 2,
                                "the node did not try again")
        self.assertEqual(server.messages(), [])
        steps = [e[1] for e in server.events]
        for step in ("AUTH", "MAIL", "RCPT", "DATA"):
            self.assertNotIn(step, steps)
        for number, steps in steps_by_connection(server).items():
            self.assertEqual(steps, ["connect", "EHLO", "QUIT"], number)
        self.assertEqual(self.status(node, job_id).get("MAIL"), "queued")
        self.assertTrue(os.path.exists(node.queue_path(job_id)))
        node.wait_for_log(r"(?i)starttls")
        self.secrets_absent(node)

    def test_certificate_for_another_name_is_never_used(self):
        # The right authority signed it, for localhost, not for this name
        server = self.smtp(security="starttls", auth=True)
        node = self.mail_node(server, auth=True, log_level="trace",
                              server_name="mail.another-name.example")
        job_id, _, _ = self.run_job(node, output_script(b"wrong name\n"))
        self.wait_for_file(node.queue_path(job_id))
        time.sleep(RETRIES_SECONDS)
        self.assertGreaterEqual(server.connections, 2,
                                "the node did not try again")
        self.assertEqual(server.messages(), [])
        steps = [e[1] for e in server.events]
        self.assertIn("STARTTLS", steps)
        for step in ("AUTH", "MAIL", "RCPT", "DATA"):
            self.assertNotIn(step, steps)
        self.assertEqual(self.status(node, job_id).get("MAIL"), "queued")
        node.wait_for_log(r"mail deferred\b.*result=tempfail.*"
                          r"TLS handshake failed")
        self.secrets_absent(node)

    def test_plaintext_auth_on_loopback_when_allowed(self):
        server = self.smtp(security="none", auth=True, plaintext_auth=True)
        node = self.mail_node(server, security="none", auth=True,
                              log_level="trace",
                              extra=["allow_plaintext_auth = true"])
        job_id, _, _ = self.run_job(node, output_script(b"plain auth\n"))
        [message] = self.delivered(server)
        self.check_message(message, job_id, "customer@example.org")
        self.assertEqual((message.envelope["tls"],
                          message.envelope["auth_user"],
                          message.envelope["auth_mechanism"]),
                         (False, USERNAME, "PLAIN"))
        report = self.wait_mail_state(node, job_id, "sent")
        self.secrets_absent(node, report)

    def test_plaintext_auth_not_allowed_stops_the_node(self):
        # The server would take it; the node refuses to start instead
        server = self.smtp(security="none", auth=True, plaintext_auth=True)
        node = self.mail_node(server, security="none", auth=True,
                              start=False)
        with self.assertRaises(harness.NodeError) as caught:
            node.start()
        self.assertIn("mail.username: would be sent without TLS; set "
                      "allow_plaintext_auth", str(caught.exception))
        self.assertEqual(server.connections, 0)

    # servers that behave oddly

    def test_ehlo_502_falls_back_to_helo(self):
        server = self.smtp(raw=True, ehlo_502=True, security="none")
        node = self.mail_node(server, security="none")
        job_id, _, _ = self.run_job(node, output_script(b"helo only\n"))
        [message] = self.delivered(server)
        self.check_message(message, job_id, "customer@example.org")
        self.assertEqual((message.envelope["esmtp"], message.envelope["helo"]),
                         (False, HELO_NAME))
        self.wait_mail_state(node, job_id, "sent")

    def test_plaintext_slipped_in_after_starttls_is_discarded(self):
        server = self.smtp(raw=True, security="starttls",
                           starttls_inject=True)
        node = self.mail_node(server, log_level="trace")
        job_id, _, _ = self.run_job(node, output_script(b"after TLS\n"))
        [message] = self.delivered(server)
        self.check_message(message, job_id, "customer@example.org")
        self.assertTrue(message.envelope["tls"])
        self.assertEqual(server.connections, 1)
        self.assertEqual(steps_by_connection(server)[1][:6],
                         ["connect", "EHLO", "STARTTLS", "injected", "EHLO",
                          "MAIL"])
        self.wait_mail_state(node, job_id, "sent")
        # Never read as a reply: the trace shows every line read
        node.wait_for_log(r"smtp recv line=.*ready to start TLS")
        self.assertNotIn("injected.invalid", node.log_text())

    def test_slow_reply_after_the_message_is_waited_for(self):
        # Giving up after the dot would send the message again
        server = self.smtp(raw=True, security="none",
                           data_delay=SLOW_DATA_SECONDS)
        node = self.mail_node(server, security="none",
                              timeout=SLOW_DATA_SECONDS // 2,
                              extra=["data_timeout_seconds = %d"
                                     % (SLOW_DATA_SECONDS * 5)])
        job_id, _, _ = self.run_job(node, output_script(b"take your time\n"))
        self.wait_mail_state(node, job_id, "sent",
                             timeout=STATUS_SECONDS + SLOW_DATA_SECONDS)
        time.sleep(FIRST_RETRY_SECONDS * 2)
        self.assertEqual(len(server.messages()), 1, "delivered twice")
        self.assertEqual(server.connections, 1)

    def test_quit_after_a_refusal_mid_transaction(self):
        refused = "nobody@example.org"
        server = self.smtp(raw=True, security="none",
                           reject_recipients=[refused], data_451=1)
        node = self.mail_node(server, security="none")
        refused_id, _, _ = self.run_job(node, output_script(b"refused\n"),
                                        reply_to=refused)
        self.wait_mail_state(node, refused_id, "failed")
        later_id, _, _ = self.run_job(node, output_script(b"451 first\n"))
        self.delivered(server, timeout=DELIVERY_SECONDS + RETRIES_SECONDS)
        self.wait_mail_state(node, later_id, "sent")
        server.wait_for_events(lambda events: len(
            [e for e in events if e[1] == "QUIT"]) == 3)
        # 550 to RCPT, 451 after the message, then delivered: each
        # session ends with QUIT right after the last reply, no RSET
        events = {}
        for number, what, detail in server.events:
            events.setdefault(number, []).append(
                (what, detail) if what in ("RCPT", "DATA") else what)
        self.assertEqual(events, {
            1: ["connect", "EHLO", "MAIL", ("RCPT", {"to": refused,
                                                     "code": 550}), "QUIT"],
            2: ["connect", "EHLO", "MAIL", ("RCPT", {"to":
                                                     "customer@example.org",
                                                     "code": 250}),
                ("DATA", 451), "QUIT"],
            3: ["connect", "EHLO", "MAIL", ("RCPT", {"to":
                                                     "customer@example.org",
                                                     "code": 250}),
                ("DATA", 250), "QUIT"]})

    def test_helo_names_the_machine_or_its_address(self):
        server = self.smtp(security="starttls")
        node = self.mail_node(server, helo_name=None)
        job_id, _, _ = self.run_job(node, output_script(b"helo\n"))
        [message] = self.delivered(server)
        expected = machine_domain() or "[127.0.0.1]"
        self.assertEqual(message.envelope["helo"], expected)
        self.assertNotEqual(expected, node.name)
        # Before STARTTLS and after it
        self.assertEqual([e[2] for e in server.events if e[1] == "EHLO"],
                         [expected, expected])
        node.wait_for_log(r"mail started\b.*helo=%s"
                          % re.escape(machine_domain() or "address-literal"))

    def test_replies_split_over_packets(self):
        server = self.smtp(raw=True, split=True, security="starttls")
        node = self.mail_node(server, security="starttls")
        job_id, _, _ = self.run_job(node, output_script(INLINE_OUTPUT))
        [message] = self.delivered(server)
        parsed = self.check_message(message, job_id, "customer@example.org")
        self.assert_inline(parsed, "stdout", INLINE_OUTPUT)
        self.assertTrue(message.envelope["tls"])
        self.assertEqual(server.connections, 1)
        self.wait_mail_state(node, job_id, "sent")

    # faults

    def test_greeting_421_then_delivered(self):
        server = self.smtp(security="starttls", greeting_421=2)
        node = self.mail_node(server)
        job_id, _, _ = self.run_job(node, output_script(b"later\n"))
        [message] = self.delivered(server,
                                   timeout=DELIVERY_SECONDS + RETRIES_SECONDS)
        self.check_message(message, job_id, "customer@example.org")
        self.assertEqual(server.connections, 3)
        self.wait_mail_state(node, job_id, "sent")
        node.wait_for_log(r"tempfail")

    def test_data_451_then_delivered_once(self):
        server = self.smtp(security="starttls", data_451=1)
        node = self.mail_node(server)
        job_id, _, _ = self.run_job(node, output_script(b"again\n"))
        [message] = self.delivered(server,
                                   timeout=DELIVERY_SECONDS + RETRIES_SECONDS)
        self.check_message(message, job_id, "customer@example.org")
        self.wait_mail_state(node, job_id, "sent")
        time.sleep(FIRST_RETRY_SECONDS * 2)
        self.assertEqual(len(server.messages()), 1, "delivered twice")

    def test_550_to_the_recipient_fails_without_retry(self):
        refused = "nobody@example.org"
        server = self.smtp(security="starttls", reject_recipients=[refused])
        node = self.mail_node(server)
        job_id, _, _ = self.run_job(node, output_script(b"unwanted\n"),
                                    reply_to=refused)
        report = self.wait_mail_state(node, job_id, "failed")
        self.assertIn("550", report.get("MAIL-ERROR", ""), report)
        self.assertEqual(report["STATE"], "done")
        node.wait_for_log(r"mail failed\b.*result=permfail")
        self.wait_for_file(node.failed_path(job_id))
        with open(node.failed_path(job_id, ".why"), "rb") as f:
            why = f.read()
        self.assertIn(b"550", why)
        self.assertLessEqual(why.count(b"\n"), 1, why)
        self.assertFalse(os.path.exists(node.queue_path(job_id)))

        time.sleep(RETRIES_SECONDS)
        self.assertEqual(server.connections, 1, "the node tried again")
        self.assertEqual(server.messages(), [])

        # What it knows survives a restart
        node.restart()
        report = self.status(node, job_id)
        self.assertEqual(report.get("MAIL"), "failed")
        self.assertIn("550", report.get("MAIL-ERROR", ""), report)
        self.assertEqual(server.connections, 1)

    def test_server_down_for_a_while_then_delivered(self):
        server = self.smtp(start=False, security="starttls")
        node = self.mail_node(server)
        job_id, _, _ = self.run_job(node, output_script(b"patience\n"))
        self.wait_for_file(node.queue_path(job_id))
        self.assertEqual(self.status(node, job_id).get("MAIL"), "queued")
        time.sleep(RETRIES_SECONDS / 2)

        server.start()
        [message] = self.delivered(server,
                                   timeout=DELIVERY_SECONDS + RETRIES_SECONDS)
        self.check_message(message, job_id, "customer@example.org")
        self.wait_mail_state(node, job_id, "sent")
        self.assertFalse(os.path.exists(node.queue_path(job_id)))

    def test_lifetime_over_while_the_server_is_down(self):
        server = self.smtp(start=False, security="starttls")
        node = self.mail_node(server, extra=["lifetime_seconds = %d"
                                             % SHORT_LIFETIME_SECONDS])
        job_id, _, _ = self.run_job(node, output_script(b"too late\n"))
        report = self.wait_mail_state(
            node, job_id, "failed",
            timeout=SHORT_LIFETIME_SECONDS + STATUS_SECONDS)
        self.assertEqual(report["STATE"], "done")
        self.assertRegex(report.get("MAIL-ERROR", ""),
                         r"^lifetime over; last attempt: connect: ", report)
        node.wait_for_log(r"mail failed\b.*result=expired")
        self.wait_for_file(node.failed_path(job_id))
        with open(node.failed_path(job_id, ".why"), "rb") as f:
            self.assertIn(b"lifetime over", f.read())
        self.assertFalse(os.path.exists(node.queue_path(job_id)))

        # Given up means given up: the server back gets nothing
        server.start()
        time.sleep(RETRIES_SECONDS)
        self.assertEqual(server.connections, 0)

    def test_last_try_comes_when_the_lifetime_ends(self):
        # Tries at 0 and 2 s; a whole next delay (4 s) would pass the
        # 5 s lifetime, so the last try waits only until it ends
        lifetime, first_retry = 5, 2
        server = self.smtp(security="starttls", greeting_421=1000)
        node = self.mail_node(server, first_retry=first_retry,
                              extra=["lifetime_seconds = %d" % lifetime])
        job_id, _, _ = self.run_job(node, output_script(b"last chance\n"))
        since = time.monotonic()
        report = self.wait_mail_state(node, job_id, "failed",
                                      timeout=lifetime + STATUS_SECONDS)
        self.assertGreaterEqual(time.monotonic() - since, lifetime - 1.5)
        self.assertEqual(server.connections, 3)
        self.assertIn("421", report.get("MAIL-ERROR", ""), report)
        node.wait_for_log(r"mail deferred\b.*retry_s=3 last_try=yes")
        node.wait_for_log(r"mail failed\b.*result=expired")

    def test_mail_waiting_at_a_restart_is_delivered(self):
        # A long first retry: only the start-up after the restart can
        # deliver it in time.
        server = self.smtp(start=False, security="starttls")
        node = self.mail_node(server, first_retry=600)
        job_id, _, _ = self.run_job(node, output_script(b"restarted\n"))
        self.wait_for_file(node.queue_path(job_id))
        node.wait_for_log(r"tempfail")
        node.stop()

        server.start()
        node.start()
        [message] = self.delivered(server)
        self.check_message(message, job_id, "customer@example.org")
        self.wait_mail_state(node, job_id, "sent")

    # what a customer controls

    def test_reply_to_cannot_add_a_header_or_recipient(self):
        server = self.smtp(security="starttls")
        node = self.mail_node(server)
        accepted = []
        for reply_to in EVIL_REPLY_TOS:
            with self.subTest(reply_to=reply_to):
                job_id = new_job_id()
                code, out, err = node.submit(
                    output_script(b"evil\n"), descriptor(reply_to=reply_to),
                    "--wait", "--job-id", job_id)
                if code != 0:
                    self.assertEqual(code, 255, err)
                    self.assertEqual(self.status_code(node, job_id), 550)
                else:
                    accepted.append((job_id, reply_to))
        time.sleep(1)  # a mail to a refused job would come by now
        self.assertEqual(len(server.messages()), len(accepted))
        for message in server.messages():
            self.assertEqual(len(message.envelope["rcpt_tos"]), 1)
            self.assertNotIn("attacker", repr(message.envelope))
        rcpts = [e[2]["to"] for e in server.events if e[1] == "RCPT"]
        self.assertFalse([r for r in rcpts if "attacker" in r], rcpts)

    def status_code(self, node, job_id):
        with node.tls_client() as c:
            c.hello()
            return c.command("STATUS " + job_id).code

    def test_args_and_output_cannot_add_a_header_or_recipient(self):
        server = self.smtp(security="starttls")
        node = self.mail_node(server)
        out = SMUGGLED.encode()
        job_id, got, _ = self.run_job(node, output_script(out),
                                      reply_to="victim@example.org",
                                      args=EVIL_ARGS)
        self.assertEqual(got, out)
        [message] = self.delivered(server)
        parsed = self.check_message(message, job_id, "victim@example.org")
        self.assert_output(parsed, "stdout", out)
        time.sleep(1)  # a smuggled second message would be here by now
        self.assertEqual(len(server.messages()), 1)
        steps = [(e[1], e[2]) for e in server.events
                 if e[1] in ("MAIL", "RCPT")]
        self.assertEqual(len(steps), 2, steps)
        self.assertNotIn("attacker", repr(steps))
        self.assertNotIn(b"\r\nBcc:", message.data.split(b"\r\n\r\n")[0])


if __name__ == "__main__":
    unittest.main()
