#!/usr/bin/python3
"""Replays the session scripts of proto-spec/vectors/sessions/ against a
running node and checks every reply, as a customer's tool would meet them.

    /usr/bin/python3 tests/e2e/session_vectors.py --host 127.0.0.1 \\
        --port N [--tls --ca FILE [--cert FILE --key FILE --peer NAME]] \\
        SCRIPT...

The script format is described in proto-spec/vectors/README.md. Each
script runs on a fresh connection. Prints one line per script passed, the
reason of each failure (script, line, expected, got), then
"N passed, N failed"; exits 1 if any script failed. Python 3 standard
library only.
"""

import argparse
import base64
import os
import re
import socket
import ssl
import sys
import time

MAX_LINE_BYTES = 1000  # a reply line, CRLF included (spec: Framing)
MAX_PAYLOAD_BYTES = 1 << 30  # more than any node would keep for a result
SEND_TIMEOUT = 10.0  # seconds, for a C:/C+ step and for CLOSED
REPLY_TIMEOUT = 30.0  # seconds, for an S: step (WAIT may hold a reply)

PAYLOAD_LINE = re.compile(r"PAYLOAD (0|[1-9][0-9]*) (0|[1-9][0-9]*)")
CODE_PATTERN = re.compile(r"[2-5][0-9x][0-9x]")


class ScriptError(Exception):
    """The script itself is malformed (not the node's fault)."""


class StepFailed(Exception):
    """The node did not do what the step expects."""


class Closed(Exception):
    """The node closed the connection."""


# --- the script ---------------------------------------------------------------

def new_job_id():
    """26 lower-case base32 characters of 128 random bits, as cloud-submit."""
    raw = base64.b32encode(os.urandom(16)).decode("ascii")
    return raw.rstrip("=").lower()


def unescape(text, lineno):
    """The C+ / P: notation: \\r \\n \\t \\\\ \\xHH; other characters as is."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            if not 0x20 <= ord(ch) <= 0x7E:
                raise ScriptError("line %d: non-ASCII character %r; use \\xHH"
                                  % (lineno, ch))
            out.append(ord(ch))
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt in ("r", "n", "t", "\\"):
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}[nxt]
            i += 2
        elif nxt == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            raise ScriptError("line %d: bad escape %r" % (lineno,
                                                         text[i:i + 4]))
    return bytes(out)


class Step:
    def __init__(self, lineno, kind, data=None, code=None, regex=None,
                 source=""):
        self.lineno = lineno
        self.kind = kind  # send | reply | payload | closed
        self.data = data
        self.code = code
        self.regex = regex
        self.source = source


NAME_PLACEHOLDER = re.compile(r"\{(NODE|PEER)\}")


def put_names(line, names, lineno, regex=False):
    """{NODE} and {PEER} replaced by names[...] (escaped in a regex)."""
    def name(m):
        value = names.get(m.group(1))
        if value is None:
            raise ScriptError("line %d: {%s} needs %s" % (
                lineno, m.group(1), "--peer and a client certificate (a"
                " peer session)" if m.group(1) == "PEER" else "a greeting"
                " that names the node"))
        return re.escape(value) if regex else value
    return NAME_PLACEHOLDER.sub(name, line)


def parse_script(text, job_id, names=None):
    """Turns a script into steps, with {JOB_ID} put in, and {NODE} and
    {PEER} from `names` in C: and S: steps. Raises ScriptError."""
    names = names or {}
    steps = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line[:-1] if line.endswith("\r") else line
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        line = line.replace("{JOB_ID}", job_id)
        if line.startswith("C: "):
            line = put_names(line, names, lineno)
        elif line.startswith("S: "):
            line = put_names(line, names, lineno, regex=True)
        elif NAME_PLACEHOLDER.search(line):
            raise ScriptError("line %d: {NODE} and {PEER} only in C: and S:"
                              " steps (their length is not known)" % lineno)

        if line.startswith("C: ") or line == "C:":
            data = line[3:].encode("ascii", "strict") + b"\r\n"
            steps.append(Step(lineno, "send", data=data, source=line))

        elif line.startswith("C+ "):
            m = re.match(r"C\+ (0|[1-9][0-9]*)(?: (.*))?\Z", line, re.S)
            if not m:
                raise ScriptError("line %d: expected 'C+ <n> <text>'" % lineno)
            data = unescape(m.group(2) or "", lineno)
            if len(data) != int(m.group(1)):
                raise ScriptError("line %d: C+ declares %s octets but its text"
                                  " gives %d" % (lineno, m.group(1),
                                                 len(data)))
            steps.append(Step(lineno, "send", data=data, source=line))

        elif line.startswith("S: "):
            m = re.match(r"S: (\S+)(?: (.*))?\Z", line, re.S)
            code = m.group(1) if m else ""
            if not CODE_PATTERN.fullmatch(code):
                raise ScriptError("line %d: bad reply code %r" % (lineno, code))
            regex = None
            if m.group(2):
                try:
                    regex = re.compile(m.group(2), re.M)
                except re.error as e:
                    raise ScriptError("line %d: bad regex: %s" % (lineno, e))
            steps.append(Step(lineno, "reply", code=code, regex=regex,
                              source=line))

        elif line.startswith("P: ") or line == "P:":
            data = unescape(line[3:], lineno)
            steps.append(Step(lineno, "payload", data=data, source=line))

        elif line.strip() == "CLOSED":
            steps.append(Step(lineno, "closed", source=line))

        else:
            raise ScriptError("line %d: unknown step %r" % (lineno, line[:40]))
    return steps


# --- the connection -----------------------------------------------------------

class Reply:
    def __init__(self, code, lines):
        self.code = code  # "250"
        self.lines = lines  # text after "NNN-" / "NNN ", one per line
        self.payload = None  # bytes after a RESULT's "250 PAYLOAD a b"

    def text(self):
        return "\n".join(self.lines)

    def show(self):
        shown = "\n".join("%s%s%s" % (self.code,
                                      "-" if i < len(self.lines) - 1 else " ",
                                      line)
                          for i, line in enumerate(self.lines))
        return shorten(shown, 1500)


def shorten(text, limit):
    return text if len(text) <= limit else text[:limit] + "...(cut)"


class Connection:
    def __init__(self, sock, trace):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.trace = trace

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if self.trace:
            sys.stderr.write("C> %r\n" % shorten(repr(data), 300))
        self.sock.settimeout(SEND_TIMEOUT)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed("while sending: %s" % e)
        except socket.timeout:
            raise StepFailed("could not send within %ds (the node is not"
                             " reading)" % SEND_TIMEOUT)

    def _fill(self, deadline):
        """Reads what has come; False at end of stream."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            chunk = b""
        except ssl.SSLError as e:
            raise StepFailed("TLS error: %s" % e)
        if self.trace and chunk:
            sys.stderr.write("S> %s\n" % shorten(repr(chunk), 300))
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_line(self, deadline):
        """One reply line, checked against the framing rules."""
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                break
            if len(self.buf) > MAX_LINE_BYTES:
                raise StepFailed("reply line longer than %d octets: %s"
                                 % (MAX_LINE_BYTES,
                                    shorten(repr(bytes(self.buf)), 200)))
            if not self._fill(deadline):
                if self.buf:
                    raise StepFailed("connection closed inside a reply line:"
                                     " %r" % bytes(self.buf[:200]))
                raise Closed("connection closed")
        raw = bytes(self.buf[:end + 1])
        del self.buf[:end + 1]
        if len(raw) > MAX_LINE_BYTES:
            raise StepFailed("reply line of %d octets (limit %d): %s"
                             % (len(raw), MAX_LINE_BYTES,
                                shorten(repr(raw), 200)))
        if not raw.endswith(b"\r\n"):
            raise StepFailed("reply line ends with a bare LF: %s"
                             % shorten(repr(raw), 200))
        body = raw[:-2]
        bad = [b for b in body if not 0x20 <= b <= 0x7E]
        if bad:
            raise StepFailed("reply line holds octet 0x%02x: %s"
                             % (bad[0], shorten(repr(raw), 200)))
        return body.decode("ascii")

    def read_reply(self, deadline):
        """A whole reply, and a RESULT's payload if the reply announces one."""
        code = None
        lines = []
        while True:
            line = self.read_line(deadline)
            m = re.match(r"([2-5][0-9][0-9])([ -]|\Z)(.*)\Z", line, re.S)
            if not m:
                raise StepFailed("malformed reply line %r (after %r)"
                                 % (shorten(line, 200), lines[-3:]))
            if code is not None and m.group(1) != code:
                raise StepFailed("reply code changed from %s to %s inside one"
                                 " reply: %r" % (code, m.group(1), line))
            code = m.group(1)
            lines.append(m.group(3))
            if m.group(2) != "-":
                break
        reply = Reply(code, lines)

        m = PAYLOAD_LINE.fullmatch(lines[-1])
        if code == "250" and m:
            size = int(m.group(1)) + int(m.group(2))
            if size > MAX_PAYLOAD_BYTES:
                raise StepFailed("payload of %d octets announced" % size)
            reply.payload = self.read_exact(size, deadline)
        return reply

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise StepFailed("connection closed after %d of %d payload"
                                 " octets" % (len(self.buf), n))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def expect_close(self, deadline):
        """True once the node has closed; data instead is a failure."""
        while not self.eof:
            if self.buf:
                break
            self._fill(deadline)
        if self.buf:
            raise StepFailed("data instead of a close: %s"
                             % shorten(repr(bytes(self.buf)), 300))


def connect(args):
    sock = socket.create_connection((args.host, args.port),
                                    timeout=SEND_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not args.tls:
        return sock
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=args.ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    return context.wrap_socket(sock, server_hostname=args.server_name)


# --- running a script -----------------------------------------------------

def code_matches(pattern, code):
    return all(p in ("x", c) for p, c in zip(pattern, code))


def check_reply(step, reply):
    if not code_matches(step.code, reply.code):
        raise StepFailed("expected %s, got:\n%s" % (step.source, reply.show()))
    if step.regex and not step.regex.search(reply.text()):
        raise StepFailed("expected %s (the regex does not match), got:\n%s"
                         % (step.source, reply.show()))


def run_steps(conn, steps, greeting):
    """Runs the steps; raises StepFailed (with .step set) on the first miss."""
    last_reply = greeting
    pending_greeting = greeting
    for index, step in enumerate(steps):
        try:
            if step.kind == "send":
                if pending_greeting is not None:
                    check_greeting(pending_greeting)
                    pending_greeting = None
                conn.send(step.data)

            elif step.kind == "reply":
                if pending_greeting is not None:
                    reply, pending_greeting = pending_greeting, None
                else:
                    deadline = time.monotonic() + REPLY_TIMEOUT
                    reply = conn.read_reply(deadline)
                check_reply(step, reply)
                last_reply = reply

            elif step.kind == "payload":
                if last_reply is None or last_reply.payload is None:
                    raise StepFailed("expected a payload, but the last reply"
                                     " announced none")
                if last_reply.payload != step.data:
                    raise StepFailed("payload differs:\n  expected %d octets"
                                     " %s\n  got      %d octets %s"
                                     % (len(step.data),
                                        shorten(repr(step.data), 600),
                                        len(last_reply.payload),
                                        shorten(repr(last_reply.payload),
                                                600)))
                last_reply = None

            elif step.kind == "closed":
                if pending_greeting is not None:
                    check_greeting(pending_greeting)
                    pending_greeting = None
                conn.expect_close(time.monotonic() + SEND_TIMEOUT)

        except socket.timeout:
            what = {"reply": "a reply", "closed": "the node to close",
                    "send": "sending"}.get(step.kind, "data")
            waited = REPLY_TIMEOUT if step.kind == "reply" else SEND_TIMEOUT
            e = StepFailed("expected %s; waited %ds for %s, nothing came"
                           "%s" % (step.source, waited, what,
                                   partial(conn)))
            e.step = step
            raise e
        except Closed as c:
            e = StepFailed("expected %s; the node closed the connection (%s)"
                           % (step.source, c))
            e.step = step
            raise e
        except StepFailed as e:
            e.step = step
            raise
    if pending_greeting is not None:
        check_greeting(pending_greeting)


def partial(conn):
    if conn.buf:
        return " (received so far: %s)" % shorten(repr(bytes(conn.buf)), 300)
    return ""


def check_greeting(reply):
    if reply.code != "220":
        raise StepFailed("expected a 220 greeting, got:\n%s" % reply.show())


def run_script(path, args):
    """Returns None when the script passed, else a failure message."""
    name = os.path.basename(path)
    job_id = new_job_id()
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii")
        parse_script(text, job_id, {"NODE": "node", "PEER": "peer"})
    except (OSError, UnicodeDecodeError, ScriptError) as e:
        return "%s: script error: %s" % (name, e)

    try:
        conn = Connection(connect(args), args.verbose)
    except (OSError, ssl.SSLError) as e:
        return "%s: cannot connect to %s:%d: %s" % (name, args.host,
                                                   args.port, e)
    try:
        try:
            greeting = conn.read_reply(time.monotonic() + SEND_TIMEOUT)
        except (StepFailed, Closed, socket.timeout, OSError) as e:
            return "%s: no greeting: %s" % (name, str(e) or "timeout")
        # {NODE}: the name the greeting gives; {PEER}: --peer.
        words = greeting.text().split()
        names = {"NODE": words[0] if words else None, "PEER": args.peer}
        try:
            steps = parse_script(text, job_id, names)
        except ScriptError as e:
            return "%s: script error: %s" % (name, e)
        try:
            run_steps(conn, steps, greeting)
        except StepFailed as e:
            step = getattr(e, "step", None)
            where = "%s:%d" % (name, step.lineno) if step else name
            return "%s (job id %s): %s" % (where, job_id, e)
        except OSError as e:
            return "%s (job id %s): connection error: %s" % (name, job_id, e)
    finally:
        conn.close()
    return None


def main():
    global SEND_TIMEOUT, REPLY_TIMEOUT
    parser = argparse.ArgumentParser(
        description="Replay cloudproto session scripts against a node.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", action="store_true",
                        help="speak TLS and verify the node's certificate")
    parser.add_argument("--ca", help="CA certificate file (with --tls)")
    parser.add_argument("--server-name", default="localhost",
                        help="name the node's certificate must carry")
    parser.add_argument("--cert", help="client certificate to present"
                        " (with --tls): a peer's, for peer scripts")
    parser.add_argument("--key", help="its private key")
    parser.add_argument("--peer", help="the node name the certificate"
                        " carries, for {PEER} in scripts")
    parser.add_argument("--step-timeout", type=float, default=SEND_TIMEOUT,
                        help="seconds for a send or a close (default 10)")
    parser.add_argument("--reply-timeout", type=float, default=REPLY_TIMEOUT,
                        help="seconds for a reply (default 30)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="trace the octets sent and received on stderr")
    parser.add_argument("scripts", nargs="+", metavar="SCRIPT")
    args = parser.parse_args()
    if args.tls and not args.ca:
        parser.error("--tls needs --ca")
    if args.cert and not (args.tls and args.key):
        parser.error("--cert needs --tls and --key")
    SEND_TIMEOUT = args.step_timeout
    REPLY_TIMEOUT = args.reply_timeout

    passed = failed = 0
    for path in args.scripts:
        failure = run_script(path, args)
        if failure is None:
            passed += 1
            print("pass %s" % os.path.basename(path))
        else:
            failed += 1
            print("FAIL %s" % failure)
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
