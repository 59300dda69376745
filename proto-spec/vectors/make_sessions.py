#!/usr/bin/python3
"""Writes proto-spec/vectors/sessions/*.txt.

The session scripts carry octet counts that must match the octets they
send; counting by hand goes wrong, so every count is computed here. Edit
this file, run it, and commit both it and the scripts it writes:

    /usr/bin/python3 proto-spec/vectors/make_sessions.py

The format of the scripts is described in proto-spec/vectors/README.md.
"""

import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "sessions"

# The runner puts a fresh 26-octet job identifier in place of this.
JOB_ID = "{JOB_ID}"
JOB_ID_OCTETS = 26

# What the test node is assumed to announce (README lists the assumptions).
TEST_MAX_JOB_BYTES = 65536

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def escape(data: bytes) -> str:
    """Renders octets in the C+ / P: notation: \\r \\n \\t \\\\ \\xHH."""
    out = []
    for i, b in enumerate(data):
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x20 and i == len(data) - 1:
            out.append("\\x20")  # a trailing space would be invisible
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def wire_len(data: bytes) -> int:
    """Octets on the wire, once the runner has put in the job id."""
    return len(data.replace(JOB_ID.encode(), b"x" * JOB_ID_OCTETS))


def all_of(*patterns: str) -> str:
    """One regex that requires every pattern somewhere in the reply."""
    return "(?s)" + "".join("(?=.*%s)" % p for p in patterns)


class Script:
    folder = OUT

    def __init__(self, name: str, title: str, *notes: str):
        self.name = name
        self.lines = ["# " + title]
        self.lines += ["# " + n for n in notes]
        self.lines.append("")

    def note(self, text: str):
        self.lines.append("# " + text)

    def blank(self):
        self.lines.append("")

    def c(self, text: str):
        assert all(0x20 <= ord(ch) <= 0x7E for ch in text), text
        self.lines.append("C: " + text)

    def raw(self, data: bytes):
        self.lines.append("C+ %d %s" % (wire_len(data), escape(data)))

    def raw_lines(self, data: bytes):
        """Sends `data` as one C+ step per line, for a readable script."""
        for piece in data.splitlines(keepends=True):
            self.raw(piece)

    def s(self, code: str, regex: str = ""):
        re.compile(regex)  # a broken regex is a bug here, not in a node
        self.lines.append(("S: %s %s" % (code, regex)).rstrip())

    def p(self, data: bytes):
        self.lines.append(("P: " + escape(data)).rstrip())

    def closed(self):
        self.lines.append("CLOSED")

    def greet(self):
        self.s("220", r"^\S+ cloudproto/1 ready$")

    def hello(self, name: str = "vectors"):
        self.c("HELLO " + name)
        self.s("250", r"\A\S+ hello %s$" % re.escape(name))

    def quit(self):
        self.c("QUIT")
        self.s("221")
        self.closed()

    def submit(self, descriptor: bytes, script: bytes, params: str = "",
               job_id: str = JOB_ID):
        line = "SUBMIT %s %d %d" % (job_id, len(descriptor), len(script))
        self.c((line + " " + params).rstrip())
        self.raw_lines(descriptor)
        self.raw_lines(script)

    def wait_done(self):
        """WAIT until the job is done (the test node runs it at once)."""
        self.c("WAIT %s 20" % JOB_ID)
        self.s("250", r"(\A|\n)STATE done\Z")

    def result(self, report_regex: str, payload: bytes):
        """RESULT of the job: its report, then its payload octets."""
        self.c("RESULT " + JOB_ID)
        self.s("250", report_regex)
        self.p(payload)

    def write(self):
        text = "\n".join(self.lines).rstrip("\n") + "\n"
        (self.folder / (self.name + ".txt")).write_text(text,
                                                        encoding="ascii")


def toml(runtime: str, args: list, extra: str = "") -> bytes:
    quoted = ", ".join('"%s"' % a for a in args)
    text = 'runtime = "%s"\n' % runtime
    if args:
        text += "args = [%s]\n" % quoted
    text += 'reply_to = "vectors@example.org"\n' + extra
    return text.encode("utf-8")


# --- jobs used by several scripts -------------------------------------------

BASH_DESCRIPTOR = toml("bash", ["world", "two words", "\u00e9"])
BASH_SCRIPT = (
    b"printf 'hello, %s\\n' \"$1\"\n"
    b"printf '%s|' \"$@\"\n"
    b"echo\n"
    b"echo \"to stderr\" >&2\n"
    b"cat <<'EOF'\n"
    b"QUIT\n"
    b".\n"
    b"EOF\n"
    b"exit 3"  # no final newline: the script is octets, not lines
)
BASH_STDOUT = "hello, world\nworld|two words|\u00e9|\nQUIT\n.\n".encode()
BASH_STDERR = b"to stderr\n"

PYTHON_DESCRIPTOR = toml("python", ["a b", "c"])
PYTHON_SCRIPT = (
    b"import sys\n"
    b"print(len(sys.argv) - 1, sys.argv[1:])\n"
    b"sys.stderr.write(\"bye\\n\")\n"
)
PYTHON_STDOUT = b"2 ['a b', 'c']\n"
PYTHON_STDERR = b"bye\n"

ECHO_DESCRIPTOR = toml("bash", [])
ECHO_SCRIPT = b"echo ok\n"

SLEEP_DESCRIPTOR = toml("bash", [])
SLEEP_SCRIPT = b"sleep 2\necho slept\n"


def done_report(runtime: str, exit_code: int, out: bytes, err: bytes) -> str:
    return all_of(
        r"\AJOB %s\nSTATE done$" % JOB_ID,
        r"^RUNTIME %s$" % runtime,
        r"^NODE \S+$",
        r"^ACCEPTED %s$" % TS,
        r"^STARTED %s$" % TS,
        r"^FINISHED %s$" % TS,
        r"^OUTCOME exited$",
        r"^EXIT-CODE %d$" % exit_code,
        r"^DURATION-MS \d+$",
        r"^STDOUT-BYTES %d$" % len(out),
        r"^STDERR-BYTES %d$" % len(err),
        r"^STDOUT-TRUNCATED no$",
        r"^STDERR-TRUNCATED no$",
        r"\nPAYLOAD %d %d\Z" % (len(out), len(err)),
    )


# --- the scripts -------------------------------------------------------------

def greeting_hello():
    s = Script("greeting-hello",
               "Greeting, HELLO and the v1 capability keywords.",
               "HELLO may be repeated; each reply is checked for one thing.")
    s.greet()
    s.hello("vectors.example")
    for pattern in [
            r"^VERSION 1( |$)",
            r"^RUNTIMES( \S+)* bash( |$)",
            r"^RUNTIMES( \S+)* python( |$)",
            r"^MAX-JOB-BYTES [1-9]\d*$",
            r"^MAX-OUTPUT-BYTES [1-9]\d*$",
            r"^DEFAULT-TIMEOUT-SECONDS [1-9]\d*$",
            r"^MAX-TIMEOUT-SECONDS [1-9]\d*$",
            r"^IDLE-TIMEOUT-SECONDS [1-9]\d*$",
            r"^WAIT$",
            r"^PIPELINING$",
    ]:
        s.c("HELLO vectors.example")
        s.s("250", pattern)
    s.note("every line after the first is a capability: KEYWORD [params]")
    s.c("HELLO vectors.example")
    s.s("250", r"\A[^\n]*(\n[A-Z0-9][A-Z0-9-]*( [ -~]*)?)+\Z")
    s.quit()
    return s


def noop_help_quit():
    s = Script("noop-help-quit",
               "NOOP, HELP and QUIT work before and after HELLO. NOOP and QUIT",
               "take no argument (501, session goes on); HELP ignores one.")
    s.greet()
    s.c("NOOP")
    s.s("250")
    s.c("NOOP some words")
    s.s("501")
    s.c("QUIT now")
    s.s("501")
    s.c("HELP SUBMIT")
    s.s("214", r"^SUBMIT ")
    s.c("HELP SUBMIT STATUS")
    s.s("501")
    s.c("HELP")
    s.s("214", all_of(*("^%s( |$)" % verb for verb in [
        "HELLO", "NOOP", "HELP", "QUIT", "SUBMIT", "STATUS", "WAIT",
        "RESULT"])))
    s.hello()
    s.c("NOOP")
    s.s("250")
    s.c("HELP")
    s.s("214", r"^SUBMIT ")
    s.quit()
    return s


def before_hello():
    s = Script("before-hello",
               "Job verbs before HELLO get 503; the session goes on.",
               "SUBMIT's payload is still consumed: the lines that follow",
               "its payload are commands again.")
    s.greet()
    s.c("STATUS " + JOB_ID)
    s.s("503")
    s.c("WAIT %s 1" % JOB_ID)
    s.s("503")
    s.c("RESULT " + JOB_ID)
    s.s("503")
    s.submit(ECHO_DESCRIPTOR, ECHO_SCRIPT)
    s.s("503")
    s.c("NOOP")
    s.s("250")
    s.hello()
    s.note("nothing was stored for the refused SUBMIT")
    s.c("STATUS " + JOB_ID)
    s.s("550")
    s.quit()
    return s


def unknown_verb():
    s = Script("unknown-verb",
               "Unknown verbs get 500 and the session goes on, before and",
               "after HELLO. CAPACITY from a customer: 500 from a node without",
               "the federation, 530 from one with it; either way the session",
               "goes on.")
    s.greet()
    s.c("FROBNICATE")
    s.s("500")
    s.hello()
    s.c("FROBNICATE now please")
    s.s("500")
    s.c("CAPACITY")
    s.s("5x0")
    s.note("an empty line is no command")
    s.c("")
    s.s("500")
    s.c("NOOP")
    s.s("250")
    s.quit()
    return s


# A customer session (the runner presents no client certificate) sends
# the verbs of the federation. A node without the federation answers 500;
# one with it answers 530, and closes after 530 to RELAY or RETURN, so the
# verb that may close goes last and no payload follows it (counts 0 0).
NO_FEDERATION_CAPS = r"\A(?![\s\S]*^(RELAY|CAPACITY|RETURN)( |$))"


def stranger(verb: str, line: str):
    s = Script("stranger-" + verb.lower(),
               "%s from a customer session: 500 (no federation) or 530 (not"
               % verb,
               "a peer); the reply text is free. The HELLO reply announces",
               "no capability of the federation to a customer.")
    s.greet()
    s.c("CAPACITY")
    s.s("5x0")
    s.c("HELLO vectors")
    s.s("250", NO_FEDERATION_CAPS)
    s.c("CAPACITY")
    s.s("5x0")
    s.c("NOOP")
    s.s("250")
    s.note("500 leaves the session open, 530 closes it: nothing follows")
    s.c(line)
    s.s("5x0")
    return s


def lowercase_verbs():
    s = Script("lowercase-verbs",
               "Verbs are case-insensitive; arguments are separated by one",
               "or more spaces.")
    s.greet()
    s.c("hello lower")
    s.s("250", r"\A\S+ hello lower$")
    s.c("Noop")
    s.s("250")
    s.c("status " + JOB_ID)
    s.s("550")
    s.c("STATUS   " + JOB_ID)
    s.s("550")
    s.c("wAiT %s   1" % JOB_ID)
    s.s("550")
    s.c("quit")
    s.s("221")
    s.closed()
    return s


def bare_lf():
    s = Script("bare-lf",
               "A bare LF ends a line as CRLF does (operators type into nc).")
    s.greet()
    s.raw(b"HELLO lf\n")
    s.s("250", r"\A\S+ hello lf$")
    s.raw(b"NOOP\n")
    s.s("250")
    s.raw(b"NOOP\r\nNOOP\nNOOP\r\n")
    s.s("250")
    s.s("250")
    s.s("250")
    s.raw(("STATUS %s\n" % JOB_ID).encode())
    s.s("550")
    s.raw(b"QUIT\n")
    s.s("221")
    s.closed()
    return s


def long_line():
    s = Script("long-line",
               "A line may hold 1000 octets with its CRLF; a longer one is",
               "discarded up to its LF and answered 500; the session goes on",
               "when the line's verb carries no payload.")
    s.greet()
    s.hello()
    # HELLO refuses a client name of more than 255 octets with 501: a
    # line the node read whole. 500 means the line itself was too long.
    longest = b"HELLO " + b"n" * (1000 - 2 - 6)
    assert len(longest) + 2 == 1000
    s.note("1000 octets with the CRLF: read and executed (501: the name is")
    s.note("too long for HELLO)")
    s.raw(longest + b"\r\n")
    s.s("501")
    s.note("1001 octets with the CRLF: too long, not executed")
    s.raw(longest + b"n\r\n")
    s.s("500")
    s.note("the same with a bare LF: 999 + 1 octets are fine, 1000 + 1 are not")
    s.raw(longest + b"n\n")
    s.s("501")
    s.raw(longest + b"nn\n")
    s.s("500")
    s.c("NOOP")
    s.s("250")
    s.note("5000 octets sent in pieces, then one more command in the packet")
    s.raw(b"STATUS " + b"y" * 2000)
    s.raw(b"y" * 2000)
    s.raw(b"y" * (5000 - 2 - 4007) + b"\r\nNOOP\r\n")
    s.s("500")
    s.s("250")
    s.quit()
    return s


def bad_octets():
    s = Script("bad-octets",
               "A command line with a NUL, another control octet or an octet",
               "above 0x7E gets 500, is not executed, and the session goes "
               "on.")
    s.greet()
    s.hello()
    for line in [b"NOOP\x00\r\n",
                 b"NO\x00OP\r\n",
                 b"HELLO caf\xc3\xa9\r\n",
                 b"NOOP\x80\r\n",
                 b"NOOP\tx\r\n",
                 b"NO\rOP\r\n",
                 b"QUIT\x1b\r\n",
                 b"QUIT\x7f\r\n"]:
        s.raw(line)
        s.s("500")
    s.note("a line of spaces only holds no word")
    s.raw(b"   \r\n")
    s.s("500", r"empty line")
    s.note("the HELLO above was refused: the client is still 'vectors'")
    s.c("NOOP")
    s.s("250")
    s.quit()
    return s


def bad_octets_submit(name, verb, *notes):
    s = Script(name, *notes)
    s.greet()
    s.hello()
    s.raw(("%s %s 50 8\x00\r\nNOOP\r\n" % (verb, JOB_ID)).encode())
    s.s("500")
    s.closed()
    return s


def long_line_submit(name, line, why):
    s = Script(name,
               "An over-long line whose first octets show a verb that carries",
               "a payload, or do not show the whole verb (%s):" % why,
               "where a payload would end is unknown, so the node answers 500",
               "and closes; what follows never runs as commands.")
    s.greet()
    s.hello()
    s.raw(line + b"\r\nNOOP\r\n")
    s.s("500", r"line too long")
    s.closed()
    return s


def submit_bash():
    s = Script("submit-bash",
               "A bash job with arguments, followed with STATUS, WAIT and "
               "RESULT.",
               "The script's lines QUIT and '.' are payload, not commands;",
               "the script has no final newline; 'two words' is one argument.")
    s.greet()
    s.hello()
    s.submit(BASH_DESCRIPTOR, BASH_SCRIPT)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.c("STATUS " + JOB_ID)
    s.s("250", all_of(r"\AJOB %s\nSTATE (queued|running|done)$" % JOB_ID,
                      r"^RUNTIME bash$", r"^ACCEPTED %s$" % TS))
    s.wait_done()
    s.result(done_report("bash", 3, BASH_STDOUT, BASH_STDERR),
             BASH_STDOUT + BASH_STDERR)
    s.note("a result can be read again")
    s.result(r"\nPAYLOAD %d %d\Z" % (len(BASH_STDOUT), len(BASH_STDERR)),
             BASH_STDOUT + BASH_STDERR)
    s.c("STATUS " + JOB_ID)
    s.s("250", r"^STATE done$")
    s.quit()
    return s


def submit_python():
    s = Script("submit-python", "A python job that exits 0.")
    s.greet()
    s.hello()
    s.submit(PYTHON_DESCRIPTOR, PYTHON_SCRIPT)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.wait_done()
    s.result(done_report("python", 0, PYTHON_STDOUT, PYTHON_STDERR),
             PYTHON_STDOUT + PYTHON_STDERR)
    s.quit()
    return s


def submit_payload_framing():
    descriptor = (b'# CRLF line ends are TOML too\r\n'
                  b'runtime = "bash"\r\n'
                  b'reply_to = "vectors@example.org"\r\n'
                  b'future_field = { nested = [1, 2] }\r\n')
    # bash stops reading at `exit`: the octets after it are never parsed.
    script = (b"echo ok\n"
              b"exit 0\n"
              b"\x00\x01\xff\r\n"
              b".\r\n"
              b"QUIT\r\n"
              b"SUBMIT abcdefghijklmnopqrstuvwxyz 1 1\r\n"
              b"\\")
    s = Script("submit-payload-framing",
               "The payload is counted, never read as lines: NUL, CR, '.',",
               "command-like lines and a lone final backslash go through.",
               "The descriptor uses CRLF and carries an unknown key (ignored).")
    s.greet()
    s.hello()
    s.c("SUBMIT %s %d %d" % (JOB_ID, len(descriptor), len(script)))
    s.raw(descriptor + script)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.c("NOOP")
    s.s("250")
    s.wait_done()
    s.result(all_of(r"^EXIT-CODE 0$", r"\nPAYLOAD 3 0\Z"), b"ok\n")
    s.quit()
    return s


def submit_empty_script():
    s = Script("submit-empty-script",
               "A script of 0 octets is a valid job: it runs nothing.")
    s.greet()
    s.hello()
    s.submit(ECHO_DESCRIPTOR, b"")
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.wait_done()
    s.result(all_of(r"^EXIT-CODE 0$", r"\nPAYLOAD 0 0\Z"), b"")
    s.quit()
    return s


def duplicate_submit():
    s = Script("duplicate-submit",
               "Handing the same job in again (same id, same octets) gets",
               "'already accepted', before and after it ran; it runs once.")
    s.greet()
    s.hello()
    s.submit(ECHO_DESCRIPTOR, ECHO_SCRIPT)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.submit(ECHO_DESCRIPTOR, ECHO_SCRIPT)
    s.s("250", r"\A%s already accepted\Z" % JOB_ID)
    s.wait_done()
    s.submit(ECHO_DESCRIPTOR, ECHO_SCRIPT)
    s.s("250", r"\A%s already accepted\Z" % JOB_ID)
    s.note("still done: the job did not go back to the queue")
    s.c("STATUS " + JOB_ID)
    s.s("250", r"^STATE done$")
    s.result(r"\nPAYLOAD 3 0\Z", b"ok\n")
    s.quit()
    return s


def id_conflict():
    s = Script("id-conflict",
               "The same id with other octets gets 556; the first job stays.")
    s.greet()
    s.hello()
    s.submit(ECHO_DESCRIPTOR, ECHO_SCRIPT)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.note("another script")
    s.submit(ECHO_DESCRIPTOR, b"echo ko\n")
    s.s("556", JOB_ID)
    s.note("another descriptor, same script")
    s.submit(toml("bash", ["x"]), ECHO_SCRIPT)
    s.s("556", JOB_ID)
    s.note("the same octets split elsewhere: another job (the id is")
    s.note("checked before the descriptor, which is not TOML here)")
    s.submit(ECHO_DESCRIPTOR + ECHO_SCRIPT[:1], ECHO_SCRIPT[1:])
    s.s("556", JOB_ID)
    s.wait_done()
    s.result(r"\nPAYLOAD 3 0\Z", b"ok\n")
    s.quit()
    return s


def bad_descriptor():
    s = Script("bad-descriptor",
               "Descriptors a node must refuse with 553, naming the field.",
               "Nothing is stored for a refused job, so the same id is",
               "reused each time, and is accepted at the end.")
    s.greet()
    s.hello()
    addr = 'reply_to = "vectors@example.org"\n'
    cases = [
        ("descriptor", 'runtime = "bash\n' + addr),          # not TOML
        ("descriptor", 'runtime = "bash"\nruntime = "bash"\n' + addr),
        ("descriptor", b'runtime = "bash"\n# \xff\n' + addr.encode()),
        ("runtime", addr),
        ("runtime", "runtime = 7\n" + addr),
        ("runtime", 'runtime = "Bash"\n' + addr),
        ("runtime", 'runtime = "ba sh"\n' + addr),
        ("runtime", 'runtime = "%s"\n' % ("r" * 33) + addr),
        ("reply_to", 'runtime = "bash"\n'),
        ("reply_to", 'runtime = "bash"\nreply_to = "nobody"\n'),
        ("reply_to", 'runtime = "bash"\nreply_to = "a b@example.org"\n'),
        ("reply_to", 'runtime = "bash"\n'
                     'reply_to = "a@example.org, b@example.org"\n'),
        ("reply_to", 'runtime = "bash"\nreply_to = "<a@example.org>"\n'),
        ("reply_to", 'runtime = "bash"\nreply_to = "a@exa_mple.org"\n'),
        ("reply_to", 'runtime = "bash"\nreply_to = "a@b@example.org"\n'),
        ("reply_to", 'runtime = "bash"\n'
                     'reply_to = "a@example.org\\r\\nBcc: c@example.org"\n'),
        ("reply_to", 'runtime = "bash"\nreply_to = "%s@example.org"\n'
                     % ("a" * 243)),
        ("args", 'runtime = "bash"\nargs = "one"\n' + addr),
        (r"args\[1\]", 'runtime = "bash"\nargs = ["one", 2]\n' + addr),
        (r"args\[0\]", 'runtime = "bash"\nargs = ["a\\u0000b"]\n' + addr),
        (r"args\[0\]", 'runtime = "bash"\nargs = ["%s"]\n' % ("a" * 4097)
         + addr),
        ("args", 'runtime = "bash"\nargs = [%s]\n'
         % ", ".join(['"a"'] * 257) + addr),
        ("timeout_seconds", 'runtime = "bash"\ntimeout_seconds = 0\n' + addr),
        ("timeout_seconds", 'runtime = "bash"\ntimeout_seconds = -5\n'
         + addr),
        ("timeout_seconds", 'runtime = "bash"\ntimeout_seconds = "30"\n'
         + addr),
        ("timeout_seconds", 'runtime = "bash"\ntimeout_seconds = 1.5\n'
         + addr),
        ("timeout_seconds", 'runtime = "bash"\n'
         'timeout_seconds = 9999999\n' + addr),
    ]
    for field, text in cases:
        data = text if isinstance(text, bytes) else text.encode()
        assert len(data) + len(ECHO_SCRIPT) <= TEST_MAX_JOB_BYTES
        s.blank()
        s.note("expect an error on " + field.replace("\\", ""))
        s.submit(data, ECHO_SCRIPT)
        s.s("553", r"\Adescriptor rejected: %s:" % field)
    s.blank()
    s.note("a runtime name may use [a-z0-9._+-]; this one is well formed")
    s.note("but not offered, so 554 follows the syntax checks")
    s.submit(b'runtime = "x.y_z+1-2"\n' + addr.encode(), ECHO_SCRIPT)
    s.s("554")
    s.blank()
    s.note("limits reached exactly are fine; unknown keys are ignored")
    good = ('runtime = "bash"\nargs = ["%s", ""]\n'
            'reply_to = "%s@example.org"\ntimeout_seconds = 60\n'
            'priority = "high"\n[future]\nkey = 1\n'
            % ("a" * 4096, "a" * 242)).encode()
    s.submit(good, ECHO_SCRIPT)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.quit()
    return s


def unknown_runtime():
    s = Script("unknown-runtime",
               "A well-formed runtime name the node does not offer: 554.")
    s.greet()
    s.hello()
    s.submit(toml("cobol-85", []), ECHO_SCRIPT)
    s.s("554", r"cobol-85")
    s.note("nothing stored: the id is free for a job the node can run")
    s.submit(ECHO_DESCRIPTOR, ECHO_SCRIPT)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.quit()
    return s


def too_large():
    s = Script("too-large",
               "A job larger than MAX-JOB-BYTES (65536 on the test node) gets",
               "552 before any payload is sent, then the node closes.")
    s.greet()
    s.c("HELLO vectors")
    s.s("250", r"^MAX-JOB-BYTES %d$" % TEST_MAX_JOB_BYTES)
    s.c("SUBMIT %s 60000 %d" % (JOB_ID, TEST_MAX_JOB_BYTES + 1 - 60000))
    s.s("552", r"\b%d\b" % (TEST_MAX_JOB_BYTES + 1))
    s.closed()
    return s


def too_large_counts():
    s = Script("too-large-counts",
               "Octet counts of 18 digits, the most allowed: read, added without",
               "overflow, and refused with 552 before any payload; then close.")
    s.greet()
    s.hello()
    s.c("SUBMIT %s 999999999999999999 999999999999999999" % JOB_ID)
    s.s("552", r"\b1999999999999999998\b")
    s.closed()
    return s


def submit_syntax():
    s = Script("submit-syntax",
               "SUBMIT lines whose sizes can be read but whose job id or",
               "parameters are malformed: the payload is consumed, then 501,",
               "and the session goes on.")
    s.greet()
    s.hello()
    desc, script = ECHO_DESCRIPTOR, ECHO_SCRIPT
    for job_id in ["short-id-15-oct",              # 15 octets
                   "a" * 65,                       # 65 octets
                   "abcdefghijklmnop.q",           # '.' not allowed
                   "abcdefghijklmnop/q"]:
        s.note("bad job id: %d octets" % len(job_id))
        s.submit(desc, script, job_id=job_id)
        s.s("501")
    s.note("a parameter that is not KEY=VALUE")
    s.submit(desc, script, params="NOEQUALS")
    s.s("501")
    s.submit(desc, script, params="=1")
    s.s("501")
    s.note("'_' is not allowed in a parameter key")
    s.submit(desc, script, params="A_B=1")
    s.s("501")
    s.note("after all that the id is still free")
    s.submit(desc, script)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.note("ids of 16 and 64 octets are valid (nothing known by them)")
    s.c("STATUS " + "A-_z" * 4)
    s.s("550")
    s.c("STATUS " + "0123456789abcdef" * 4)
    s.s("550")
    s.quit()
    return s


def submit_unreadable(name: str, line: str, why: str):
    s = Script(name,
               "SUBMIT whose sizes cannot be read (%s): the node cannot" % why,
               "know where a payload would end, so it replies 501 and closes.")
    s.greet()
    s.hello()
    s.c(line)
    s.s("501")
    s.closed()
    return s


def unknown_parameter():
    s = Script("unknown-parameter",
               "SUBMIT parameters the node did not announce: 555, payload",
               "consumed, nothing stored. v1 announces none (HOPS and TRACE",
               "are parameters of RELAY, not of SUBMIT).")
    s.greet()
    s.hello()
    s.submit(ECHO_DESCRIPTOR, ECHO_SCRIPT, params="FROBNICATE=1")
    s.s("555", r"FROBNICATE")
    s.submit(ECHO_DESCRIPTOR, ECHO_SCRIPT, params="HOPS=1 TRACE=a.example")
    s.s("555")
    s.c("NOOP")
    s.s("250")
    s.submit(ECHO_DESCRIPTOR, ECHO_SCRIPT)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.quit()
    return s


def unknown_job():
    s = Script("unknown-job",
               "STATUS, WAIT and RESULT of an id the node does not know: 550.",
               "Malformed arguments: 501.")
    s.greet()
    s.hello()
    s.c("STATUS " + JOB_ID)
    s.s("550", JOB_ID)
    s.c("WAIT %s 1" % JOB_ID)
    s.s("550", JOB_ID)
    s.c("RESULT " + JOB_ID)
    s.s("550", JOB_ID)
    s.note("ids compare case-sensitively")
    s.submit(ECHO_DESCRIPTOR, ECHO_SCRIPT, job_id="ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    s.s("250", r"accepted\Z")
    s.c("STATUS abcdefghijklmnopqrstuvwxyz")
    s.s("550")
    for line in ["STATUS", "STATUS short", "STATUS %s extra" % JOB_ID,
                 "RESULT", "RESULT bad.id.but.long.enough",
                 "WAIT " + JOB_ID, "WAIT %s 0" % JOB_ID,
                 "WAIT %s 3601" % JOB_ID, "WAIT %s 01" % JOB_ID,
                 "WAIT %s -1" % JOB_ID, "WAIT %s ten" % JOB_ID,
                 "HELLO"]:
        s.c(line)
        s.s("501")
    s.quit()
    return s


def result_before_done():
    s = Script("result-before-done",
               "RESULT of a job that is not final: 450 naming its state.",
               "WAIT that runs out of time ends on the non-final state; a",
               "longer WAIT shows the progress and ends on the final state.")
    s.greet()
    s.hello()
    s.submit(SLEEP_DESCRIPTOR, SLEEP_SCRIPT)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.c("RESULT " + JOB_ID)
    s.s("450", r"^job %s is (queued|running)$" % JOB_ID)
    s.c("WAIT %s 1" % JOB_ID)
    s.s("250", r"\ASTATE (queued|running)(\nSTATE (queued|running))*\Z")
    s.c("WAIT %s 30" % JOB_ID)
    s.s("250", r"\ASTATE (queued|running)\n(STATE (queued|running)\n)*"
        r"STATE done\Z")
    s.result(r"\nPAYLOAD 6 0\Z", b"slept\n")
    s.note("a WAIT on a final job answers at once, in one line")
    s.c("WAIT %s 30" % JOB_ID)
    s.s("250", r"\ASTATE done\Z")
    s.quit()
    return s


def pipelining():
    s = Script("pipelining",
               "Several commands in one packet are answered in order.")
    s.greet()
    s.raw(("HELLO pipe\r\nNOOP\r\nSTATUS %s\r\nFROB\r\nHELP\r\n"
           "RESULT %s\r\nNOOP\r\n" % (JOB_ID, JOB_ID)).encode())
    s.s("250", r"\A\S+ hello pipe$")
    s.s("250")
    s.s("550")
    s.s("500")
    s.s("214")
    s.s("550")
    s.s("250")
    s.quit()
    return s


def pipelined_submit():
    s = Script("pipelined-submit",
               "SUBMIT, its payload and the next commands in one packet: the",
               "payload ends where its count says, the commands after it run.")
    s.greet()
    s.hello()
    head = "SUBMIT %s %d %d\r\n" % (JOB_ID, len(ECHO_DESCRIPTOR),
                                    len(ECHO_SCRIPT))
    tail = "WAIT %s 20\r\nRESULT %s\r\nQUIT\r\n" % (JOB_ID, JOB_ID)
    s.raw(head.encode() + ECHO_DESCRIPTOR + ECHO_SCRIPT + tail.encode())
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.s("250", r"(\A|\n)STATE done\Z")
    s.s("250", r"\nPAYLOAD 3 0\Z")
    s.p(b"ok\n")
    s.s("221")
    s.closed()
    return s


# --- peer sessions (spec Section 16) ------------------------------------------
#
# Run on a session whose client certificate passes for a configured peer
# of the node, named {PEER} (the runner's --peer); {NODE} is the node's
# name from its greeting. Both stand in C: and S: steps only, since their
# length is not known here.

PEER = "{PEER}"
NODE = "{NODE}"


class PeerScript(Script):
    folder = OUT / "peer"

    def hello(self, name: str = PEER):
        self.c("HELLO " + name)
        self.s("250", r"\A%s hello %s$" % (NODE, name))

    def relay(self, descriptor: bytes, script: bytes, params: str):
        self.c("RELAY %s %d %d %s" % (JOB_ID, len(descriptor), len(script),
                                      params))
        self.raw_lines(descriptor)
        self.raw_lines(script)


def peer_hello():
    s = PeerScript("peer-hello",
                   "A peer session: HELLO announces RELAY with the hop limit,",
                   "CAPACITY and RETURN; CAPACITY names the node and gives a",
                   "RUNTIME line per runtime it runs.")
    s.greet()
    s.c("HELLO " + PEER)
    s.s("250", all_of(r"\A%s hello %s$" % (NODE, PEER),
                      r"^RELAY (1[0-3]|[1-9])$", r"^CAPACITY$", r"^RETURN$"))
    s.c("CAPACITY")
    s.s("250", all_of(r"\A%s capacity$" % NODE,
                      r"^RUNTIME bash \d+ \d+$", r"^RUNTIME python \d+ \d+$"))
    s.c("CAPACITY now")
    s.s("501")
    s.quit()
    return s


def peer_relay():
    s = PeerScript("peer-relay",
                   "RELAY of a bash job: accepted; the same octets again (a",
                   "lost reply), with the parameters spelt otherwise too:",
                   "already accepted, and it runs once; other octets: 556.",
                   "The node runs bash, so it keeps the job and runs it.")
    s.greet()
    s.hello()
    s.relay(ECHO_DESCRIPTOR, ECHO_SCRIPT, "HOPS=1 TRACE=" + PEER)
    s.s("250", r"\A%s accepted\Z" % JOB_ID)
    s.relay(ECHO_DESCRIPTOR, ECHO_SCRIPT, "HOPS=1 TRACE=" + PEER)
    s.s("250", r"\A%s already accepted\Z" % JOB_ID)
    s.relay(ECHO_DESCRIPTOR, ECHO_SCRIPT, "trace=%s hops=1" % PEER)
    s.s("250", r"\A%s already accepted\Z" % JOB_ID)
    s.relay(ECHO_DESCRIPTOR, ECHO_SCRIPT + b"# other\n",
            "HOPS=1 TRACE=" + PEER)
    s.s("556", r"\Ajob id %s already used by another job\Z" % JOB_ID)
    s.wait_done()
    s.c("STATUS " + JOB_ID)
    s.s("250", all_of(r"^NODE %s$" % NODE, r"^TRACE %s$" % PEER))
    s.result(r"\nPAYLOAD 3 0\Z", b"ok\n")
    s.quit()
    return s


def peer_relay_refused():
    far = ",".join("far-%d" % i for i in range(1, 14))
    s = PeerScript("peer-relay-refused",
                   "RELAYs refused once their payload is read; the session",
                   "goes on and nothing is stored: the trace holds the node",
                   "(557), more hops than any hop limit (557), a trace that",
                   "does not end with the sender or is missing (501), an",
                   "unknown parameter (555), a runtime no provider offers",
                   "(554; every peer of the node has answered HELLO).")
    s.greet()
    s.hello()
    s.relay(ECHO_DESCRIPTOR, ECHO_SCRIPT, "HOPS=2 TRACE=%s,%s" % (NODE, PEER))
    s.s("557", r"\A%s would loop: the trace already holds %s\Z"
        % (JOB_ID, NODE))
    s.relay(ECHO_DESCRIPTOR, ECHO_SCRIPT, "HOPS=14 TRACE=%s,%s" % (far, PEER))
    s.s("557", r"\A%s exceeds the hop limit of (1[0-3]|[1-9])\Z" % JOB_ID)
    s.relay(ECHO_DESCRIPTOR, ECHO_SCRIPT, "HOPS=1 TRACE=vectors-stranger")
    s.s("501")
    s.relay(ECHO_DESCRIPTOR, ECHO_SCRIPT, "HOPS=1")
    s.s("501")
    s.relay(ECHO_DESCRIPTOR, ECHO_SCRIPT, "HOPS=1 TRACE=%s COLOUR=red" % PEER)
    s.s("555", r"\Aparameter COLOUR not recognised\Z")
    s.relay(toml("cobol-85", []), ECHO_SCRIPT, "HOPS=1 TRACE=" + PEER)
    s.s("554", r"\Aruntime cobol-85 is not offered by any provider\Z")
    s.c("STATUS " + JOB_ID)
    s.s("550")
    s.quit()
    return s


def peer_return():
    report = ("JOB %s\r\nSTATE done\r\n" % JOB_ID).encode()
    running = ("JOB %s\r\nSTATE running\r\n" % JOB_ID).encode()
    s = PeerScript("peer-return",
                   "RETURN of a job the node never relayed to the sender: 550;",
                   "of a report not in a final state: 553 first; counts that",
                   "cannot be read: 501, and the node closes.")
    s.greet()
    s.hello()
    for text, code, regex in (
            (running, "553", r"\Areport rejected: "),
            (report, "550",
             r"\Ano job %s was relayed to %s\Z" % (JOB_ID, PEER))):
        s.c("RETURN %s %d 3 0" % (JOB_ID, wire_len(text)))
        s.raw(text)
        s.raw(b"ok\n")
        s.s(code, regex)
    s.c("RETURN %s 65537 0 0" % JOB_ID)
    s.s("501")
    s.closed()
    return s


def main():
    for folder in (OUT, PeerScript.folder):
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.txt"):
            old.unlink()
    scripts = [
        greeting_hello(), noop_help_quit(), before_hello(), unknown_verb(),
        stranger("RELAY",
                 "RELAY %s 0 0 HOPS=1 TRACE=vectors.example" % JOB_ID),
        stranger("RETURN", "RETURN %s 0 0 0" % JOB_ID),
        lowercase_verbs(), bare_lf(), long_line(), bad_octets(),
        bad_octets_submit("bad-octets-submit", "SUBMIT",
                          "A SUBMIT line with a refused octet: where its "
                          "payload would",
                          "end is unknown, so the node answers 500 and "
                          "closes; the",
                          "octets after the line never run as commands."),
        bad_octets_submit("bad-octets-submit-indented", "  submit",
                          "The same after leading SP, in lower case: the "
                          "verb is what",
                          "counts, wherever the line's first word starts."),
        long_line_submit("long-line-submit",
                         ("SUBMIT %s 50 8 X=" % JOB_ID).encode() + b"a" * 1000,
                         "SUBMIT"),
        long_line_submit("long-line-relay-lowercase",
                         b"  relay " + b"n" * 1000, "relay after SP"),
        long_line_submit("long-line-verb-unseen", b"   " + b"Q" * 1000,
                         "its letters run past the first 16 octets"),
        submit_bash(), submit_python(), submit_payload_framing(),
        submit_empty_script(), duplicate_submit(), id_conflict(),
        bad_descriptor(), unknown_runtime(), too_large(), submit_syntax(),
        submit_unreadable("submit-no-sizes", "SUBMIT " + JOB_ID,
                          "none given"),
        submit_unreadable("submit-bad-size", "SUBMIT %s 010 5" % JOB_ID,
                          "a leading zero"),
        submit_unreadable("submit-signed-size", "SUBMIT %s 10 +5" % JOB_ID,
                          "a sign"),
        submit_unreadable("submit-size-19-digits",
                          "SUBMIT %s 9999999999999999999 8446744073709551717"
                          % JOB_ID,
                          "19 digits; the two would add up to 2^64 + 100"),
        too_large_counts(),
        unknown_parameter(), unknown_job(), result_before_done(),
        pipelining(), pipelined_submit(),
    ]
    peer_scripts = [peer_hello(), peer_relay(), peer_relay_refused(),
                    peer_return()]
    for script in scripts + peer_scripts:
        script.write()
    print("wrote %d scripts to %s, %d to %s" % (
        len(scripts), OUT, len(peer_scripts), PeerScript.folder))


if __name__ == "__main__":
    main()
