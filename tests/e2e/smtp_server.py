#!/usr/bin/python3
"""Real SMTP servers on loopback for the result mail tests: aiosmtpd's
server with STARTTLS, implicit TLS, AUTH PLAIN and LOGIN, and the faults a
mail server shows (421 at greeting, 550 to a recipient, 451 to DATA, no
STARTTLS); and a raw asyncio server, not aiosmtpd, whose replies come in
pieces, which may refuse EHLO, slip plaintext in after its 220 to
STARTTLS, or take its time after a message's final dot.

Every message a server accepts is saved as it got it: <n>.eml holds the
DATA content after dot-unstuffing, byte for byte; <n>.json beside it holds
the envelope (MAIL FROM, RCPT TO list, TLS on or not, AUTH user). events
records each connection's steps in order, for tests that look at how a
client behaved.

Run with /usr/bin/python3 (Debian's python3-aiosmtpd); as a script it
serves until interrupted:

    /usr/bin/python3 tests/e2e/smtp_server.py --help
"""

import argparse
import asyncio
import json
import logging
import os
import pwd
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOST = "127.0.0.1"
# The name in the server's certificate (make-certs puts localhost in
# every certificate it makes); clients check it with server name
# "localhost".
CERTIFICATE_NAME = "smtp"
SERVER_NAME = "localhost"

USERNAME = "node-e2e"
PASSWORD = "e2e-Mail-Pass-8d2f"

SECURITY_MODES = ("starttls", "tls", "none")
MESSAGE_WAIT_SECONDS = 15
START_TIMEOUT_SECONDS = 10
# The raw server's pause between the pieces of one reply: long enough
# for each piece to leave in its own TCP segment.
SPLIT_PAUSE_SECONDS = 0.02
# What the raw server slips in after its 220 to STARTTLS, in the same
# segment, when told to: a fake EHLO reply that a client which kept it
# would take for the real one (the attack of RFC 3207 section 6).
STARTTLS_INJECTED = (b"250-injected.invalid before TLS\r\n"
                     b"250 AUTH PLAIN LOGIN\r\n")
MAX_DATA_LINE_BYTES = 1000  # 998 octets and CRLF (RFC 5321 4.5.3.1.6)
MAX_COMMAND_BYTES = 4096

# aiosmtpd warns on stderr about its own deprecated attributes; a test's
# output shows only errors, a script's everything from INFO on.
logging.getLogger("mail.log").setLevel(logging.ERROR)

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


# --- certificates ---------------------------------------------------------

def make_certificates(folder):
    """An authority and a server certificate for localhost / 127.0.0.1 in
    `folder`, made by examples/make-certs. Returns (ca.crt, certificate,
    key) paths."""
    env = dict(os.environ, CERTS_DIR=folder)
    subprocess.run([os.path.join(SOURCE_DIR, "examples/make-certs"),
                    CERTIFICATE_NAME], env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    return (os.path.join(folder, "ca.crt"),
            os.path.join(folder, CERTIFICATE_NAME + ".crt"),
            os.path.join(folder, CERTIFICATE_NAME + ".key"))


def server_context(certificate, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key)
    return context


def free_port():
    """A loopback port nobody listens on now, for a server that starts
    later on a port the client already knows."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --- what a server saw ----------------------------------------------------

class Message:
    def __init__(self, path, data, envelope):
        self.path = path
        self.data = data          # bytes as received after unstuffing
        self.envelope = envelope  # dict, as in <n>.json

    def __repr__(self):
        return "Message(%s, %d bytes, %r)" % (self.path, len(self.data),
                                              self.envelope)


class Store:
    """The folder of received messages, and the counters that the faults
    use. Shared by every connection of one server."""

    def __init__(self, folder):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.lock = threading.Lock()
        self.connections = 0
        self.data_commands = 0
        self.saved = 0
        self.events = []  # (connection number, event, detail)

    def next_connection(self):
        with self.lock:
            self.connections += 1
            return self.connections

    def next_data(self):
        with self.lock:
            self.data_commands += 1
            return self.data_commands

    def event(self, connection, what, detail=None):
        with self.lock:
            self.events.append((connection, what, detail))

    def save(self, data, envelope):
        """<n>.eml first, then <n>.json: a message counts once its JSON is
        there. Each file is renamed into place whole."""
        with self.lock:
            self.saved += 1
            number = self.saved
        stem = os.path.join(self.folder, "%04d" % number)
        envelope = dict(envelope, size=len(data))
        for suffix, content in ((".eml", data),
                                (".json", json.dumps(envelope, indent=1)
                                 .encode())):
            with open(stem + suffix + ".part", "wb") as f:
                f.write(content)
            os.rename(stem + suffix + ".part", stem + suffix)
        return number

    def messages(self):
        found = []
        for name in sorted(os.listdir(self.folder)):
            if not name.endswith(".json"):
                continue
            stem = os.path.join(self.folder, name[:-len(".json")])
            with open(stem + ".json", "rb") as f:
                envelope = json.load(f)
            with open(stem + ".eml", "rb") as f:
                found.append(Message(stem + ".eml", f.read(), envelope))
        return found


class Faults:
    """What a server does wrong, on purpose.

    greeting_421: the first N connections get 421 instead of 220 and are
    closed; reject_recipients: RCPT TO one of these gets 550; data_451:
    the first N messages get 451 after their final dot."""

    def __init__(self, greeting_421=0, reject_recipients=(), data_451=0):
        self.greeting_421 = greeting_421
        self.reject_recipients = {a.lower() for a in reject_recipients}
        self.data_451 = data_451


def unstuff(lines):
    """DATA lines (each ending CRLF) as the message: a leading dot is
    removed (RFC 5321 4.5.2)."""
    return b"".join(line[1:] if line.startswith(b".") else line
                    for line in lines)


# --- the aiosmtpd server --------------------------------------------------

class _Session(SMTP):
    """aiosmtpd's SMTP with a connection number, a 421 greeting for the
    first connections, and a TLS flag that covers both kinds of TLS."""

    def __init__(self, handler, store, faults, counted, **kw):
        super().__init__(handler, **kw)
        self.store = store
        self.faults = faults
        self.number = store.next_connection() if counted else 0

    def tls_on(self):
        if self._tls_protocol is not None:
            return True
        return (self.transport is not None and
                self.transport.get_extra_info("ssl_object") is not None)

    async def _handle_client(self):
        # aiosmtpd knows only STARTTLS as TLS: on a connection that is TLS
        # from its first byte, AUTH is as safe as after STARTTLS.
        if self._tls_protocol is None and self.tls_on():
            self._auth_require_tls = False
        if self.number:
            self.store.event(self.number, "connect", self.tls_on())
        if 0 < self.number <= self.faults.greeting_421:
            self.store.event(self.number, "greeting", 421)
            await self.push("421 4.3.2 %s not accepting mail yet, try later"
                            % self.hostname)
            self.transport.close()
            return
        await super()._handle_client()

    async def smtp_STARTTLS(self, arg):
        self.store.event(self.number, "STARTTLS")
        await super().smtp_STARTTLS(arg)

    async def smtp_RSET(self, arg):
        self.store.event(self.number, "RSET")
        await super().smtp_RSET(arg)

    async def smtp_QUIT(self, arg):
        self.store.event(self.number, "QUIT")
        await super().smtp_QUIT(arg)


class _Handler:
    """aiosmtpd's hooks: records each step, applies the faults, saves
    each message whole."""

    def __init__(self, store, faults, auth):
        self.store = store
        self.faults = faults
        self.auth = auth

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        session.host_name = hostname
        server.store.event(server.number, "EHLO", hostname)
        if not self.auth:
            # aiosmtpd offers "AUTH" with no mechanism when it has none
            responses = [r for r in responses
                         if not r.startswith("250-AUTH")]
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        server.store.event(server.number, "HELO", hostname)
        return "250 %s" % server.hostname

    async def handle_MAIL(self, server, session, envelope, address,
                          options):
        server.store.event(server.number, "MAIL",
                           {"from": address, "tls": server.tls_on()})
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address,
                          options):
        refused = address.lower() in self.faults.reject_recipients
        server.store.event(server.number, "RCPT",
                           {"to": address, "code": 550 if refused else 250})
        if refused:
            return "550 5.1.1 <%s>: recipient unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        number = self.store.next_data()
        if number <= self.faults.data_451:
            server.store.event(server.number, "DATA", 451)
            return "451 4.3.0 message %d not accepted yet, try later" % number
        auth = session.auth_data
        saved = self.store.save(envelope.original_content, {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls": server.tls_on(),
            "auth_user": (auth.login.decode("utf-8", "replace")
                          if isinstance(auth, LoginPassword) else None),
            "auth_mechanism": getattr(session, "e2e_mechanism", None),
            "helo": session.host_name,
            "esmtp": session.extended_smtp,
            "connection": server.number,
        })
        server.store.event(server.number, "DATA", 250)
        return "250 2.0.0 Ok: queued as %04d" % saved


class _Controller(Controller):
    """aiosmtpd's threaded controller on a port chosen by the system
    (port 0) or given. Its own first connection, which only checks that
    the server answers, is not counted."""

    def __init__(self, handler, store, faults, **kw):
        super().__init__(handler, **kw)
        self.store = store
        self.faults = faults
        self.started = False

    def factory(self):
        return _Session(self.handler, self.store, self.faults,
                        counted=self.started, **self.SMTP_kwargs)

    def _trigger_server(self):
        if self.port == 0:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def _authenticator(server, session, envelope, mechanism, auth_data):
    good = (isinstance(auth_data, LoginPassword) and
            auth_data.login == USERNAME.encode() and
            auth_data.password == PASSWORD.encode())
    user = (auth_data.login.decode("utf-8", "replace")
            if isinstance(auth_data, LoginPassword) else None)
    server.store.event(server.number, "AUTH",
                       {"mechanism": mechanism, "user": user, "ok": good,
                        "tls": server.tls_on()})
    if good:
        session.e2e_mechanism = mechanism
        return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)


# --- the raw server -------------------------------------------------------

class _RawServer:
    """Enough SMTP to take a message, written by hand on asyncio streams:
    the greeting, EHLO and the reply after DATA are multi-line; with
    `split`, every reply goes out in pieces (each line cut in three) with a
    pause after each; with `ehlo_502`, EHLO is refused and only HELO
    works; with `starttls_inject`, STARTTLS_INJECTED follows the 220 to
    STARTTLS in the same write; `data_delay` seconds pass between a
    message's final dot (the message is stored then) and the reply.
    STARTTLS or implicit TLS as aiosmtpd's server; no AUTH."""

    def __init__(self, store, faults, security, context, port, split,
                 ehlo_502, starttls_inject=False, data_delay=0):
        self.store = store
        self.faults = faults
        self.security = security
        self.context = context
        self.port = port
        self.split = split
        self.ehlo_502 = ehlo_502
        self.starttls_inject = starttls_inject
        self.data_delay = data_delay
        self.loop = None
        self.server = None
        self.thread = None
        self.tasks = set()

    def start(self):
        ready = threading.Event()
        failure = []

        def run():
            self.loop = asyncio.new_event_loop()
            try:
                ssl_arg = self.context if self.security == "tls" else None
                self.server = self.loop.run_until_complete(
                    asyncio.start_server(self._connected, HOST, self.port,
                                         ssl=ssl_arg,
                                         limit=MAX_COMMAND_BYTES * 4))
            except Exception as e:  # reported to start()'s caller
                failure.append(e)
                ready.set()
                return
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS):
            raise TimeoutError("raw SMTP server did not start")
        if failure:
            raise failure[0]

    def stop(self):
        async def close():
            self.server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _connected(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await _RawSession(self, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError,
                ssl.SSLError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()


class _RawSession:
    def __init__(self, server, reader, writer):
        self.server = server
        self.store = server.store
        self.reader = reader
        self.writer = writer
        self.number = self.store.next_connection()
        self.tls = server.security == "tls"
        self.helo = None
        self.esmtp = False
        self.mail_from = None
        self.rcpt_tos = []
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def reply(self, code, *lines):
        """One reply; several lines make a multi-line reply."""
        lines = lines or ("",)
        text = b"".join(("%d%s%s\r\n" % (code, "-" if i + 1 < len(lines)
                                         else " ", line)).encode()
                        for i, line in enumerate(lines))
        if not self.server.split:
            self.writer.write(text)
            await self.writer.drain()
            return
        for line in text.splitlines(keepends=True):
            third = max(1, len(line) // 3)
            for piece in (line[:2], line[2:third + 2], line[third + 2:]):
                if piece:
                    self.writer.write(piece)
                    await self.writer.drain()
                    await asyncio.sleep(SPLIT_PAUSE_SECONDS)

    async def run(self):
        name = SERVER_NAME
        self.store.event(self.number, "connect", self.tls)
        if self.number <= self.server.faults.greeting_421:
            self.store.event(self.number, "greeting", 421)
            await self.reply(421, "4.3.2 %s not accepting mail yet" % name)
            return
        await self.reply(220, "%s ESMTP raw e2e server" % name,
                         "a multi-line greeting", "welcome")
        while True:
            line = await self.reader.readuntil(b"\r\n")
            command, _, arg = line[:-2].decode("utf-8", "replace") \
                .partition(" ")
            verb = command.upper()
            handler = getattr(self, "do_" + verb, None)
            if handler is None:
                await self.reply(500, "5.5.2 command not recognized")
                continue
            if await handler(arg.strip()) == "quit":
                return

    async def do_EHLO(self, arg):
        self.store.event(self.number, "EHLO", arg)
        if self.server.ehlo_502:
            await self.reply(502, "5.5.1 EHLO not implemented, use HELO")
            return
        self.helo, self.esmtp = arg, True
        keywords = ["8BITMIME", "SIZE 10485760", "ENHANCEDSTATUSCODES"]
        if self.server.security == "starttls" and not self.tls:
            keywords.append("STARTTLS")
        await self.reply(250, SERVER_NAME, *keywords, "HELP")

    async def do_HELO(self, arg):
        self.store.event(self.number, "HELO", arg)
        self.helo, self.esmtp = arg, False
        await self.reply(250, SERVER_NAME)

    async def do_STARTTLS(self, arg):
        self.store.event(self.number, "STARTTLS")
        if self.server.security != "starttls" or self.tls:
            await self.reply(454, "4.7.0 TLS not available")
            return
        # Plaintext sent after STARTTLS must not count (RFC 3207 4.2).
        # The 220 goes out whole and TLS starts with no await in between:
        # the client's handshake, sent as soon as it reads the 220, must
        # reach TLS and not the plaintext reader.
        self.reader._buffer.clear()
        ready = b"220 2.0.0 ready to start TLS\r\n"
        if self.server.starttls_inject:
            self.store.event(self.number, "injected", STARTTLS_INJECTED)
            ready += STARTTLS_INJECTED
        self.writer.write(ready)
        await self.writer.start_tls(self.server.context)
        self.tls = True
        self.helo, self.mail_from, self.rcpt_tos = None, None, []

    async def do_MAIL(self, arg):
        if self.helo is None:
            await self.reply(503, "5.5.1 send EHLO or HELO first")
            return
        address = arg.partition(":")[2].strip().split(" ")[0].strip("<>")
        self.store.event(self.number, "MAIL",
                         {"from": address, "tls": self.tls})
        self.mail_from, self.rcpt_tos = address, []
        await self.reply(250, "2.1.0 Ok")

    async def do_RCPT(self, arg):
        if self.mail_from is None:
            await self.reply(503, "5.5.1 need MAIL first")
            return
        address = arg.partition(":")[2].strip().split(" ")[0].strip("<>")
        refused = address.lower() in self.server.faults.reject_recipients
        self.store.event(self.number, "RCPT",
                         {"to": address, "code": 550 if refused else 250})
        if refused:
            await self.reply(550, "5.1.1 <%s>: recipient unknown" % address)
            return
        self.rcpt_tos.append(address)
        await self.reply(250, "2.1.5 Ok")

    async def do_DATA(self, arg):
        if not self.rcpt_tos:
            await self.reply(503, "5.5.1 need RCPT first")
            return
        await self.reply(354, "end data with <CR><LF>.<CR><LF>")
        lines, too_long = [], False
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b".\r\n":
                break
            too_long = too_long or len(line) > MAX_DATA_LINE_BYTES + 1
            lines.append(line)
        if too_long:
            await self.reply(500, "5.5.6 line too long")
            return
        number = self.store.next_data()
        if number <= self.server.faults.data_451:
            self.store.event(self.number, "DATA", 451)
            await self.reply(451, "4.3.0 not accepted yet, try later")
            return
        saved = self.store.save(unstuff(lines), {
            "mail_from": self.mail_from, "rcpt_tos": self.rcpt_tos,
            "tls": self.tls, "auth_user": None, "auth_mechanism": None,
            "helo": self.helo, "esmtp": self.esmtp,
            "connection": self.number})
        self.store.event(self.number, "DATA", 250)
        self.mail_from, self.rcpt_tos = None, []
        if self.server.data_delay:
            self.store.event(self.number, "delay", self.server.data_delay)
            await asyncio.sleep(self.server.data_delay)
        await self.reply(250, "2.0.0 Ok: queued as %04d" % saved,
                         "thank you")

    async def do_RSET(self, arg):
        self.store.event(self.number, "RSET")
        self.mail_from, self.rcpt_tos = None, []
        await self.reply(250, "2.0.0 Ok")

    async def do_NOOP(self, arg):
        await self.reply(250, "2.0.0 Ok")

    async def do_QUIT(self, arg):
        self.store.event(self.number, "QUIT")
        await self.reply(221, "2.0.0 Bye")
        return "quit"


# --- the server a test starts ---------------------------------------------

class SmtpServer:
    """One SMTP server on 127.0.0.1 whose files live in `folder`
    (messages/ for what it received, certs/ unless `certs` names a folder
    that make_certificates() filled).

    security: "starttls" offers STARTTLS (require_starttls: refuses
    MAIL before it), "tls" is TLS from the first byte, "none" offers no
    TLS at all. auth: offers AUTH (only over TLS, unless plaintext_auth)
    with USERNAME and PASSWORD; auth_mechanisms: the ones offered. raw:
    the hand-written server instead of aiosmtpd's (split: replies in
    pieces; ehlo_502; starttls_inject; data_delay seconds). port: 0 for a
    free one, or the one a client was told before."""

    def __init__(self, folder, security="starttls", require_starttls=False,
                 auth=False, auth_mechanisms=("PLAIN", "LOGIN"),
                 plaintext_auth=False, greeting_421=0, reject_recipients=(),
                 data_451=0, raw=False, split=False, ehlo_502=False,
                 starttls_inject=False, data_delay=0, port=0, certs=None):
        if security not in SECURITY_MODES:
            raise ValueError("security must be one of %r" % (SECURITY_MODES,))
        if raw and auth:
            raise ValueError("the raw server offers no AUTH")
        if not raw and (starttls_inject or data_delay):
            raise ValueError("starttls_inject and data_delay are the raw "
                             "server's")
        self.folder = folder
        self.security = security
        self.require_starttls = require_starttls
        self.auth = auth
        self.auth_mechanisms = tuple(m.upper() for m in auth_mechanisms)
        self.plaintext_auth = plaintext_auth
        self.faults = Faults(greeting_421, reject_recipients, data_451)
        self.raw = raw
        self.split = split
        self.ehlo_502 = ehlo_502
        self.starttls_inject = starttls_inject
        self.data_delay = data_delay
        self.port = port
        self.certs = certs or os.path.join(folder, "certs")
        os.makedirs(self.certs, exist_ok=True)
        self.ca, self.certificate, self.key = make_certificates(self.certs)
        self.store = Store(os.path.join(folder, "messages"))
        self.host = HOST
        self._server = None

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    # life cycle

    def start(self):
        if self._server is not None:
            raise RuntimeError("SMTP server already running")
        context = server_context(self.certificate, self.key)
        if self.raw:
            server = _RawServer(self.store, self.faults, self.security,
                                context, self.port, self.split,
                                self.ehlo_502, self.starttls_inject,
                                self.data_delay)
            server.start()
        else:
            server = self._aiosmtpd(context)
            server.start()
            server.started = True
        self.port = server.port
        self._server = server
        return self

    def _aiosmtpd(self, context):
        excluded = [m for m in ("PLAIN", "LOGIN")
                    if m not in self.auth_mechanisms]
        kw = dict(hostname=self.host, port=self.port,
                  server_hostname=SERVER_NAME, ident="aiosmtpd e2e server",
                  auth_require_tls=not self.plaintext_auth,
                  auth_exclude_mechanism=excluded,
                  decode_data=False)
        if self.security == "starttls":
            kw.update(tls_context=context,
                      require_starttls=self.require_starttls)
        elif self.security == "tls":
            kw.update(ssl_context=context)
        if self.auth:
            kw.update(authenticator=_authenticator)
        handler = _Handler(self.store, self.faults, self.auth)
        return _Controller(handler, self.store, self.faults, **kw)

    def stop(self):
        if self._server is None:
            return
        self._server.stop()
        self._server = None

    def is_running(self):
        return self._server is not None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # what it received

    @property
    def events(self):
        with self.store.lock:
            return list(self.store.events)

    @property
    def connections(self):
        return self.store.connections

    def messages(self):
        return self.store.messages()

    def wait_for_events(self, predicate, timeout=MESSAGE_WAIT_SECONDS):
        """The events once predicate(events) is true; a TimeoutError after
        `timeout` seconds shows the last ones."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                raise TimeoutError("no such events at %s after %ss: %r"
                                   % (self.address, timeout, events[-30:]))
            time.sleep(0.05)

    def wait_for_messages(self, count=1, timeout=MESSAGE_WAIT_SECONDS):
        """The messages once there are at least `count`; a TimeoutError
        after `timeout` seconds names what did arrive."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(
                    "%d of %d messages at %s after %ss; events: %r"
                    % (len(found), count, self.address, timeout,
                       self.events[-30:]))
            time.sleep(0.05)


# --- Postfix ----------------------------------------------------------------

POSTFIX = "/usr/sbin/postfix"
POSTFIX_HOSTNAME = "postfix.e2e.example"
POSTFIX_STOP_SECONDS = 20

# Only what a relay needs, none of it chrooted: Postfix's smtpd takes
# the mail, its smtp client passes it on.
POSTFIX_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

POSTFIX_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {log}
maillog_file_prefixes = {instance}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {hostname}
mydomain = e2e.example
myorigin = $mydomain
mydestination =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
# Strict about EHLO, as RFC 5321 allows: a domain name or an address
# literal, nothing else
smtpd_helo_required = yes
smtpd_helo_restrictions = reject_invalid_helo_hostname,
    reject_non_fqdn_helo_hostname
smtpd_tls_security_level = may
smtpd_tls_cert_file = {certificate}
smtpd_tls_key_file = {key}
relayhost = [{sink_host}]:{sink_port}
smtp_tls_security_level = none
smtp_dns_support_level = disabled
biff = no
"""


class PostfixServer:
    """Debian's Postfix as a private instance in `folder` (root starts
    it; its daemons run as the postfix user): smtpd on 127.0.0.1:port
    offers STARTTLS with certs/ (as SmtpServer's), wants a domain or an
    address literal in EHLO, and relays every message to `sink`, an
    aiosmtpd SmtpServer without TLS, which stores what Postfix passed on:
    the message with Postfix's Received: field on top. No AUTH, which
    would take a SASL server too. port: 0 for a free one, known before
    start()."""

    def __init__(self, folder, certs=None, port=0):
        self.folder = folder
        self.sink = SmtpServer(os.path.join(folder, "sink"),
                               security="none", certs=certs)
        self.ca = self.sink.ca
        self.host = HOST
        self.port = port or free_port()
        self.instance = os.path.join(folder, "postfix")
        self.conf = os.path.join(self.instance, "conf")
        self.log_path = os.path.join(self.instance, "postfix.log")
        self._running = False

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def _configure(self):
        queue = os.path.join(self.instance, "queue")
        data = os.path.join(self.instance, "data")
        for path in (self.conf, queue, data):
            os.makedirs(path, exist_ok=True)
        # The postfix user must reach its queue below the test's folder
        for path in (self.folder, self.instance):
            os.chmod(path, 0o755)
        postfix = pwd.getpwnam("postfix")
        os.chown(data, postfix.pw_uid, postfix.pw_gid)
        values = dict(queue=queue, data=data, log=self.log_path,
                      instance=self.instance, hostname=POSTFIX_HOSTNAME,
                      certificate=self.sink.certificate, key=self.sink.key,
                      sink_host=self.sink.host, sink_port=self.sink.port,
                      listen=self.address)
        for name, text in (("main.cf", POSTFIX_MAIN_CF),
                           ("master.cf", POSTFIX_MASTER_CF)):
            with open(os.path.join(self.conf, name), "w") as f:
                f.write(text.format(**values))

    def _postfix(self, command):
        done = subprocess.run([POSTFIX, "-c", self.conf, command],
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=60)
        return done.returncode

    def start(self):
        if self._running:
            raise RuntimeError("Postfix already running")
        if os.geteuid() != 0:
            raise RuntimeError("a private Postfix needs root: its daemons "
                               "start as root and become the postfix user")
        self.sink.start()
        self._configure()
        if self._postfix("start") != 0:
            raise RuntimeError("postfix start failed:\n" + self.log_text())
        self._running = True
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            with socket.socket() as s:
                if s.connect_ex((self.host, self.port)) == 0:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("Postfix does not listen on %s:\n%s"
                                   % (self.address, self.log_text()))
            time.sleep(0.1)

    def stop(self):
        if self._running:
            self._postfix("stop")
            deadline = time.monotonic() + POSTFIX_STOP_SECONDS
            while self._postfix("status") == 0:
                if time.monotonic() > deadline:
                    self._postfix("abort")
                    break
                time.sleep(0.1)
            self._running = False
        self.sink.stop()

    def is_running(self):
        return self._running

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    @property
    def events(self):
        return self.sink.events

    def messages(self):
        return self.sink.messages()

    def wait_for_messages(self, count=1, timeout=MESSAGE_WAIT_SECONDS):
        return self.sink.wait_for_messages(count, timeout)


def without_received(data):
    """The message without the Received: field a relay put on top, and
    that field: (message, field)."""
    if not data.startswith(b"Received:"):
        return data, b""
    end = 0
    while True:
        end = data.index(b"\r\n", end) + 2
        if data[end:end + 1] not in (b" ", b"\t"):
            return data[end:], data[:end]


# --- as a script ----------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(
        description="An SMTP server on 127.0.0.1 for cloudproto's mail "
        "tests. Prints its address and the authority's certificate, then "
        "serves until interrupted; each message received goes into "
        "FOLDER/messages as <n>.eml and <n>.json.")
    parser.add_argument("--folder", help="where messages and certificates "
                        "go (default: a new temporary folder)")
    parser.add_argument("--port", type=int, default=0,
                        help="port to listen on (default: a free one)")
    parser.add_argument("--security", choices=SECURITY_MODES,
                        default="starttls")
    parser.add_argument("--require-starttls", action="store_true",
                        help="refuse MAIL and others before STARTTLS")
    parser.add_argument("--auth", action="store_true",
                        help="offer AUTH over TLS: user %s, password %s"
                        % (USERNAME, PASSWORD))
    parser.add_argument("--auth-mechanisms", default="PLAIN,LOGIN",
                        help="comma-separated (default: PLAIN,LOGIN)")
    parser.add_argument("--plaintext-auth", action="store_true",
                        help="offer and accept AUTH without TLS too")
    parser.add_argument("--greeting-421", type=int, default=0, metavar="N",
                        help="answer 421 at greeting to the first N "
                        "connections")
    parser.add_argument("--reject", action="append", default=[],
                        metavar="ADDRESS", help="550 to RCPT TO this address")
    parser.add_argument("--data-451", type=int, default=0, metavar="N",
                        help="451 after DATA for the first N messages")
    parser.add_argument("--raw", action="store_true",
                        help="the hand-written server instead of aiosmtpd")
    parser.add_argument("--split", action="store_true",
                        help="raw: every reply in pieces with pauses")
    parser.add_argument("--ehlo-502", action="store_true",
                        help="raw: answer 502 to EHLO")
    parser.add_argument("--starttls-inject", action="store_true",
                        help="raw: plaintext lines right after the 220 to "
                        "STARTTLS")
    parser.add_argument("--data-delay", type=float, default=0,
                        metavar="SECONDS",
                        help="raw: wait this long before the reply after "
                        "a message's final dot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.INFO)

    folder = args.folder or tempfile.mkdtemp(prefix="cloudproto-smtp-")
    server = SmtpServer(folder, security=args.security,
                        require_starttls=args.require_starttls,
                        auth=args.auth,
                        auth_mechanisms=args.auth_mechanisms.split(","),
                        plaintext_auth=args.plaintext_auth,
                        greeting_421=args.greeting_421,
                        reject_recipients=args.reject,
                        data_451=args.data_451, raw=args.raw,
                        split=args.split, ehlo_502=args.ehlo_502,
                        starttls_inject=args.starttls_inject,
                        data_delay=args.data_delay,
                        port=args.port)
    server.start()
    print("smtp server listening address=%s security=%s authority=%s "
          "messages=%s" % (server.address, server.security, server.ca,
                           server.store.folder), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
