#!/usr/bin/python3
"""The SMTP servers of smtp_server.py, checked with swaks (an SMTP client
nobody here wrote) and raw lines, so that the mail tests can trust what
they assume: STARTTLS offered and working, AUTH PLAIN and LOGIN accepted
with the right password and refused with a wrong one or before TLS, 550
for the refused recipient, 421 at greeting and then 220, 451 to DATA and
then 250, no STARTTLS when it is not offered, implicit TLS, a reply split
over many packets that still parses, HELO after a 502 to EHLO, AUTH
without TLS only when configured, plaintext slipped in after the 220 to
STARTTLS, a slow reply after the final dot, QUIT and RSET recorded, and
each message stored exactly as it came, dot-unstuffed. Postfix, in a
private instance, takes mail over STARTTLS from a client that names
itself by a domain or an address literal, refuses a bare name, and
passes the message on unchanged under its Received: field. No node is
started.

Run with /usr/bin/python3 (it imports aiosmtpd); needs swaks and Perl's
Net::SSLeay for swaks' TLS.
"""

import atexit
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import smtp_server
from smtp_server import PASSWORD, USERNAME, PostfixServer, SmtpServer

KEEP_FOLDERS = os.environ.get("CLOUDPROTO_E2E_KEEP") == "1"
SWAKS_TIMEOUT_SECONDS = 30
REPLY_TIMEOUT_SECONDS = 10
SENDER = "sender@e2e.example"
RECIPIENT = "customer@example.org"
REFUSED = "nobody@example.org"

# swaks' exit statuses (man swaks, EXIT CODES)
SWAKS_OK = 0
SWAKS_BANNER = 21
SWAKS_MAIL = 23
SWAKS_RCPT = 24
SWAKS_AFTER_DATA = 26
SWAKS_AUTH = 28
SWAKS_TLS = 29

_certs = None


def certificates():
    """One authority and server certificate for the whole file."""
    global _certs
    if _certs is None:
        _certs = tempfile.mkdtemp(prefix="cloudproto-e2e-smtp-certs-")
        if not KEEP_FOLDERS:
            atexit.register(shutil.rmtree, _certs, True)
        smtp_server.make_certificates(_certs)
    return _certs


class SmtpConversation:
    """Raw SMTP lines over a socket, for what swaks will not do (AUTH
    that was not offered, exact DATA octets, how replies arrive)."""

    def __init__(self, port, implicit_tls=False):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             REPLY_TIMEOUT_SECONDS)
        if implicit_tls:
            self.sock = self._context().wrap_socket(
                self.sock, server_hostname=smtp_server.SERVER_NAME)
        self.buf = b""
        self.chunks = []  # every recv() result, as it came

    @staticmethod
    def _context():
        return ssl.create_default_context(
            cafile=os.path.join(certificates(), "ca.crt"))

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """(code, [text after "NNN-" or "NNN "]) of one reply."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed after %r" % self.buf)
                self.chunks.append(chunk)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line[4:].decode())
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def command(self, text):
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def starttls(self):
        code, lines = self.command("STARTTLS")
        if code != 220:
            raise AssertionError("STARTTLS: %d %r" % (code, lines))
        self.sock = self._context().wrap_socket(
            self.sock, server_hostname=smtp_server.SERVER_NAME)


class SmtpServerTest(unittest.TestCase):

    def server(self, **options):
        folder = tempfile.mkdtemp(prefix="cloudproto-e2e-smtp-")
        if not KEEP_FOLDERS:
            self.addCleanup(shutil.rmtree, folder, True)
        server = SmtpServer(folder, certs=certificates(), **options).start()
        self.addCleanup(server.stop)
        return server

    def postfix(self):
        folder = tempfile.mkdtemp(prefix="cloudproto-e2e-postfix-")
        if not KEEP_FOLDERS:
            self.addCleanup(shutil.rmtree, folder, True)
        server = PostfixServer(folder, certs=certificates()).start()
        self.addCleanup(server.stop)
        return server

    def swaks(self, server, *args, to=RECIPIENT, helo="swaks.e2e.example"):
        """swaks against the server; (exit status, transcript)."""
        command = ["swaks", "--server", server.address, "--from", SENDER,
                   "--to", to, "--helo", helo, "--timeout", "10"]
        if "--tls" in args or "--tls-on-connect" in args:
            command += ["--tls-verify", "--tls-ca-path", server.ca]
        done = subprocess.run(command + list(args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              timeout=SWAKS_TIMEOUT_SECONDS)
        return done.returncode, done.stdout.decode("utf-8", "replace")

    def assert_swaks(self, expected, server, *args, **kw):
        code, transcript = self.swaks(server, *args, **kw)
        self.assertEqual(code, expected, transcript)
        return transcript

    def auth_args(self, mechanism, password=PASSWORD):
        return ["--auth", mechanism, "--auth-user", USERNAME,
                "--auth-password", password]

    # STARTTLS and AUTH

    def test_starttls_is_offered_and_works(self):
        server = self.server(security="starttls")
        transcript = self.assert_swaks(SWAKS_OK, server, "--tls")
        self.assertIn("250-STARTTLS", transcript)
        self.assertIn("TLS started", transcript)
        [message] = server.messages()
        self.assertTrue(message.envelope["tls"])
        self.assertEqual(message.envelope["mail_from"], SENDER)
        self.assertEqual(message.envelope["rcpt_tos"], [RECIPIENT])

    def test_auth_plain_and_login_accepted_with_the_password(self):
        server = self.server(security="starttls", auth=True)
        for mechanism in ("PLAIN", "LOGIN"):
            with self.subTest(mechanism=mechanism):
                transcript = self.assert_swaks(
                    SWAKS_OK, server, "--tls", *self.auth_args(mechanism))
                self.assertIn("235 ", transcript)
        envelopes = [m.envelope for m in server.messages()]
        self.assertEqual([(e["auth_user"], e["auth_mechanism"], e["tls"])
                          for e in envelopes],
                         [(USERNAME, "PLAIN", True),
                          (USERNAME, "LOGIN", True)])

    def test_auth_with_a_wrong_password_is_refused(self):
        server = self.server(security="starttls", auth=True)
        for mechanism in ("PLAIN", "LOGIN"):
            with self.subTest(mechanism=mechanism):
                transcript = self.assert_swaks(
                    SWAKS_AUTH, server, "--tls",
                    *self.auth_args(mechanism, password=PASSWORD + "x"))
                self.assertIn("535 ", transcript)
        self.assertEqual(server.messages(), [])

    def test_only_login_offered_when_plain_is_left_out(self):
        server = self.server(security="starttls", auth=True,
                             auth_mechanisms=("LOGIN",))
        transcript = self.assert_swaks(SWAKS_OK, server, "--tls",
                                       *self.auth_args("LOGIN"))
        self.assertRegex(transcript, r"250-AUTH LOGIN\r?\n")
        self.assert_swaks(SWAKS_AUTH, server, "--tls",
                          *self.auth_args("PLAIN"))

    def test_auth_is_refused_before_tls(self):
        server = self.server(security="starttls", auth=True)

        # Not offered, so swaks will not try
        transcript = self.assert_swaks(SWAKS_AUTH, server,
                                       *self.auth_args("PLAIN"))
        self.assertNotIn("250-AUTH", transcript)

        # Tried anyway: refused, and refused again after the greeting
        c = SmtpConversation(server.port)
        self.addCleanup(c.close)
        self.assertEqual(c.reply()[0], 220)
        self.assertEqual(c.command("EHLO raw.e2e.example")[0], 250)
        code, _ = c.command("AUTH PLAIN AG5vZGUtZTJlAHg=")
        self.assertEqual(code, 538)
        c.starttls()
        code, lines = c.command("EHLO raw.e2e.example")
        self.assertIn("AUTH LOGIN PLAIN", lines)
        self.assertEqual(server.messages(), [])

    def test_plaintext_auth_only_when_configured(self):
        server = self.server(security="none", auth=True,
                             plaintext_auth=True)
        for mechanism in ("PLAIN", "LOGIN"):
            with self.subTest(mechanism=mechanism):
                transcript = self.assert_swaks(SWAKS_OK, server,
                                               *self.auth_args(mechanism))
                self.assertIn("235 ", transcript)
        self.assertEqual([(m.envelope["tls"], m.envelope["auth_user"])
                          for m in server.messages()],
                         [(False, USERNAME), (False, USERNAME)])

        # Without plaintext_auth, the same server refuses it
        server = self.server(security="none", auth=True)
        transcript = self.assert_swaks(SWAKS_AUTH, server,
                                       *self.auth_args("PLAIN"))
        self.assertNotIn("250-AUTH", transcript)

    def test_require_starttls_refuses_mail_before_it(self):
        server = self.server(security="starttls", require_starttls=True)
        transcript = self.assert_swaks(SWAKS_MAIL, server)
        self.assertIn("530 ", transcript)
        self.assert_swaks(SWAKS_OK, server, "--tls")
        self.assertEqual(len(server.messages()), 1)

    # faults

    def test_refused_recipient_gets_550(self):
        server = self.server(security="starttls", reject_recipients=[REFUSED])
        transcript = self.assert_swaks(SWAKS_RCPT, server, "--tls",
                                       to=REFUSED)
        self.assertIn("550 5.1.1", transcript)
        self.assertEqual(server.messages(), [])
        self.assert_swaks(SWAKS_OK, server, "--tls")
        self.assertEqual(len(server.messages()), 1)

    def test_greeting_421_for_the_first_connections_then_220(self):
        server = self.server(security="starttls", greeting_421=2)
        for _ in range(2):
            transcript = self.assert_swaks(SWAKS_BANNER, server, "--tls")
            self.assertIn("421 4.3.2", transcript)
        self.assert_swaks(SWAKS_OK, server, "--tls")
        self.assertEqual(len(server.messages()), 1)
        self.assertEqual(server.connections, 3)

    def test_data_451_for_the_first_messages_then_250(self):
        server = self.server(security="starttls", data_451=1)
        transcript = self.assert_swaks(SWAKS_AFTER_DATA, server, "--tls")
        self.assertIn("451 4.3.0", transcript)
        self.assertEqual(server.messages(), [])
        self.assert_swaks(SWAKS_OK, server, "--tls")
        self.assertEqual(len(server.messages()), 1)

    def test_no_starttls_when_not_offered(self):
        server = self.server(security="none")
        transcript = self.assert_swaks(SWAKS_TLS, server, "--tls")
        self.assertIn("did not advertise STARTTLS", transcript)
        self.assertNotIn("250-STARTTLS", transcript)
        self.assertEqual(server.messages(), [])
        transcript = self.assert_swaks(SWAKS_OK, server)
        self.assertNotIn("250-STARTTLS", transcript)
        [message] = server.messages()
        self.assertFalse(message.envelope["tls"])

    def test_implicit_tls(self):
        server = self.server(security="tls", auth=True)
        transcript = self.assert_swaks(SWAKS_OK, server, "--tls-on-connect",
                                       *self.auth_args("PLAIN"))
        self.assertNotIn("STARTTLS", transcript)
        self.assert_swaks(SWAKS_OK, server, "--tls-on-connect",
                          *self.auth_args("LOGIN"))
        envelopes = [m.envelope for m in server.messages()]
        self.assertEqual([(e["tls"], e["auth_mechanism"]) for e in envelopes],
                         [(True, "PLAIN"), (True, "LOGIN")])

    # the raw server

    def test_split_replies_parse_with_and_without_starttls(self):
        server = self.server(raw=True, split=True, security="starttls")
        # swaks over TLS shows a reply that came in pieces with parts
        # missing (it still reads the code right); in plaintext it shows
        # each line whole.
        transcript = self.assert_swaks(SWAKS_OK, server, "--tls")
        self.assertIn("220-a multi-line greeting", transcript)
        self.assertIn("TLS started", transcript)
        self.assertIn("250 thank you", transcript)
        transcript = self.assert_swaks(SWAKS_OK, server)
        self.assertIn("250-2.0.0 Ok: queued as 0002\n<-  250 thank you",
                      transcript)
        self.assertEqual([m.envelope["tls"] for m in server.messages()],
                         [True, False])

    def test_split_replies_come_in_many_packets(self):
        server = self.server(raw=True, split=True, security="starttls")
        c = SmtpConversation(server.port)
        self.addCleanup(c.close)
        code, lines = c.reply()
        self.assertEqual((code, len(lines)), (220, 3))
        self.assertGreaterEqual(len(c.chunks), 6, c.chunks)
        c.chunks = []
        code, lines = c.command("EHLO raw.e2e.example")
        self.assertEqual(code, 250)
        self.assertIn("STARTTLS", lines)
        self.assertGreaterEqual(len(c.chunks), 2 * len(lines), c.chunks)

    def test_plaintext_follows_the_220_to_starttls_when_injecting(self):
        server = self.server(raw=True, security="starttls",
                             starttls_inject=True)
        c = SmtpConversation(server.port)
        self.addCleanup(c.close)
        self.assertEqual(c.reply()[0], 220)
        self.assertEqual(c.command("EHLO raw.e2e.example")[0], 250)
        c.chunks = []
        self.assertEqual(c.command("STARTTLS")[0], 220)
        # In the same segment as the 220, before any TLS
        self.assertEqual(c.buf, smtp_server.STARTTLS_INJECTED)
        self.assertEqual(c.chunks, [b"220 2.0.0 ready to start TLS\r\n" +
                                    smtp_server.STARTTLS_INJECTED])
        c.buf = b""
        c.sock = c._context().wrap_socket(
            c.sock, server_hostname=smtp_server.SERVER_NAME)
        code, lines = c.command("EHLO raw.e2e.example")
        self.assertEqual(code, 250)
        self.assertNotIn("STARTTLS", lines)
        self.assertEqual(c.command("QUIT")[0], 221)

    def test_slow_reply_after_the_final_dot(self):
        delay = 1.5
        server = self.server(raw=True, security="none", data_delay=delay)
        c = SmtpConversation(server.port)
        self.addCleanup(c.close)
        c.reply()
        c.command("EHLO raw.e2e.example")
        c.command("MAIL FROM:<%s>" % SENDER)
        c.command("RCPT TO:<%s>" % RECIPIENT)
        self.assertEqual(c.command("DATA")[0], 354)
        c.send(b"Subject: slow\r\n\r\nbody\r\n.\r\n")
        sent = time.monotonic()
        # Stored at once, answered only later
        server.wait_for_messages(1, timeout=delay / 2)
        self.assertEqual(c.reply()[0], 250)
        self.assertGreaterEqual(time.monotonic() - sent, delay - 0.1)

    def test_quit_and_rset_are_recorded(self):
        for raw in (False, True):
            with self.subTest(raw=raw):
                server = self.server(raw=raw, security="none")
                c = SmtpConversation(server.port)
                self.addCleanup(c.close)
                c.reply()
                c.command("EHLO raw.e2e.example")
                self.assertEqual(c.command("RSET")[0], 250)
                self.assertEqual(c.command("QUIT")[0], 221)
                self.assertEqual([e[1] for e in server.events],
                                 ["connect", "EHLO", "RSET", "QUIT"])

    def test_ehlo_502_then_helo_works(self):
        server = self.server(raw=True, ehlo_502=True, security="none")
        transcript = self.assert_swaks(SWAKS_OK, server)
        self.assertIn("502 5.5.1", transcript)
        self.assertIn("-> HELO swaks.e2e.example", transcript)
        [message] = server.messages()
        self.assertEqual((message.envelope["esmtp"], message.envelope["helo"]),
                         (False, "swaks.e2e.example"))

    # Postfix

    def test_postfix_relays_to_its_sink_unchanged(self):
        server = self.postfix()
        # Whole, so that Postfix's cleanup has no field to add
        body = ("From: <%s>\nTo: <%s>\nDate: Fri, 04 Dec 2026 17:00:00 "
                "+0000\nMessage-ID: <1@e2e.example>\nSubject: through "
                "Postfix\n\n.\n..dots\nline" % (SENDER, RECIPIENT))
        transcript = self.assert_swaks(SWAKS_OK, server, "--tls",
                                       "--data", body, helo="[127.0.0.1]")
        self.assertIn("250-STARTTLS", transcript)
        [message] = server.wait_for_messages(1)
        data, received = smtp_server.without_received(message.data)
        self.assertIn(b"by %s (Postfix) with ESMTPS"
                      % smtp_server.POSTFIX_HOSTNAME.encode(), received)
        # swaks ends the last line
        self.assertEqual(data, (body + "\n").replace("\n", "\r\n").encode())
        self.assertEqual((message.envelope["mail_from"],
                          message.envelope["rcpt_tos"]),
                         (SENDER, [RECIPIENT]))

        # A name that is neither a domain nor an address literal
        transcript = self.assert_swaks(SWAKS_RCPT, server, "--tls",
                                       helo="provider-a")
        self.assertIn("504 5.5.2 <provider-a>: Helo command rejected",
                      transcript)
        self.assertEqual(len(server.messages()), 1)

    # what is stored

    # Dot-stuffed as a client must send it; each line's first dot goes.
    STUFFED = (b"Subject: dots\r\n"
               b"\r\n"
               b"..\r\n"
               b"...two\r\n"
               b".. lead\r\n"
               b"nul \x00 ff \xff lone\rcr\r\n"
               b"x" * 998 + b"\r\n"
               b"last\r\n")
    UNSTUFFED = (b"Subject: dots\r\n"
                 b"\r\n"
                 b".\r\n"
                 b"..two\r\n"
                 b". lead\r\n"
                 b"nul \x00 ff \xff lone\rcr\r\n"
                 b"x" * 998 + b"\r\n"
                 b"last\r\n")

    def check_stored_exactly(self, server, tls):
        c = SmtpConversation(server.port, implicit_tls=tls == "tls")
        self.addCleanup(c.close)
        self.assertEqual(c.reply()[0], 220)
        self.assertEqual(c.command("EHLO raw.e2e.example")[0], 250)
        if tls == "starttls":
            c.starttls()
            self.assertEqual(c.command("EHLO raw.e2e.example")[0], 250)
        self.assertEqual(c.command("MAIL FROM:<%s>" % SENDER)[0], 250)
        self.assertEqual(c.command("RCPT TO:<%s>" % RECIPIENT)[0], 250)
        self.assertEqual(c.command("DATA")[0], 354)
        c.send(self.STUFFED + b".\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.command("QUIT")[0], 221)
        [message] = server.wait_for_messages(1)
        self.assertEqual(message.data, self.UNSTUFFED)
        self.assertEqual(message.envelope["tls"], tls != "none")

    def test_message_stored_exactly_after_unstuffing(self):
        for raw in (False, True):
            for tls in ("starttls", "tls", "none"):
                with self.subTest(raw=raw, tls=tls):
                    server = self.server(raw=raw, security=tls)
                    self.check_stored_exactly(server, tls)

    def test_line_over_998_octets_is_refused(self):
        for raw in (False, True):
            with self.subTest(raw=raw):
                server = self.server(raw=raw, security="none")
                c = SmtpConversation(server.port)
                self.addCleanup(c.close)
                c.reply()
                c.command("EHLO raw.e2e.example")
                c.command("MAIL FROM:<%s>" % SENDER)
                c.command("RCPT TO:<%s>" % RECIPIENT)
                self.assertEqual(c.command("DATA")[0], 354)
                c.send(b"x" * 1100 + b"\r\n.\r\n")
                self.assertEqual(c.reply()[0], 500)
                self.assertEqual(server.messages(), [])

    def test_a_server_started_later_on_a_known_port(self):
        port = smtp_server.free_port()
        server = self.server(security="none", port=port)
        self.assertEqual(server.port, port)
        server.stop()
        with socket.socket() as s:
            self.assertNotEqual(s.connect_ex(("127.0.0.1", port)), 0)
        server.start()
        self.assert_swaks(SWAKS_OK, server)
        self.assertEqual(server.connections, 1)


if __name__ == "__main__":
    unittest.main()
