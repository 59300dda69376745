"""What the end-to-end tests share: a real cloud-node on loopback, the real
cloud-submit, and raw protocol clients over TLS and over the plaintext
listener. Python 3 standard library only; run with /usr/bin/python3.

The binaries come from CLOUD_NODE and CLOUD_SUBMIT (CTest sets them), the
source tree from CLOUDPROTO_SOURCE_DIR; without them, /work/main and
its build/ folder.
Set CLOUDPROTO_E2E_KEEP=1 to keep the nodes' folders (config, spool,
outbox, log) after a run.
"""

import atexit
import base64
import email
import email.policy
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE_DIR = os.environ.get("CLOUDPROTO_SOURCE_DIR", "/work/main")
NODE_BINARY = os.environ.get("CLOUD_NODE",
                             os.path.join(SOURCE_DIR, "build/node/cloud-node"))
SUBMIT_BINARY = os.environ.get(
    "CLOUD_SUBMIT", os.path.join(SOURCE_DIR, "build/submit-cli/cloud-submit"))
KEEP_FOLDERS = os.environ.get("CLOUDPROTO_E2E_KEEP") == "1"
# The Windows build's cloud-node.exe, run under Wine by scripts/wine-run
# (test_windows_node.py; scripts/windows-check sets it).
WINDOWS_NODE_BINARY = os.environ.get("CLOUD_NODE_WINDOWS")
# Wine starts slower than a native node, the first time above all.
WINDOWS_START_TIMEOUT_SECONDS = 60

NODE_NAME = "e2e"
START_TIMEOUT_SECONDS = 10
STOP_GRACE_SECONDS = 10
REPLY_TIMEOUT_SECONDS = 30
SUBMIT_TIMEOUT_SECONDS = 20       # a cloud-submit run that waits for no job
SUBMIT_WAIT_TIMEOUT_SECONDS = 60  # one with --wait
MAIL_TIMEOUT_SECONDS = 10    # from a final job to its .eml in the outbox

LISTENING = re.compile(r" server listening address=127\.0\.0\.1:(\d+) "
                       r"tls=(yes|no)")
STARTED = re.compile(r" node started ")
CRASHED = re.compile(r"\bcrashed\b")


def new_job_id():
    """26 lower-case base32 characters of 128 random bits, as cloud-submit."""
    raw = base64.b32encode(os.urandom(16)).decode("ascii")
    return raw.rstrip("=").lower()


def toml_string(text):
    """A TOML basic string. JSON's string escapes are all valid TOML ones,
    and ensure_ascii=False keeps é and 漢字 as UTF-8 octets."""
    return json.dumps(text, ensure_ascii=False)


def descriptor(runtime="bash", args=None, reply_to="customer@example.org",
               timeout_seconds=None, extra=""):
    """A descriptor's TOML text; None leaves a key out."""
    lines = []
    if runtime is not None:
        lines.append("runtime = %s" % toml_string(runtime))
    if args is not None:
        lines.append("args = [%s]" % ", ".join(toml_string(a) for a in args))
    if reply_to is not None:
        lines.append("reply_to = %s" % toml_string(reply_to))
    if timeout_seconds is not None:
        lines.append("timeout_seconds = %d" % timeout_seconds)
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def processes_with(marker):
    """(pid, cmdline) of every live process whose command line holds
    `marker` (a str); zombies have an empty cmdline and are not counted."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if needle in cmdline:
            found.append((int(entry), cmdline.replace(b"\0", b" ")))
    return found


def kill_processes_with(marker):
    """Cleans up after a test that found survivors, so that they do not
    outlive the run."""
    for pid, _ in processes_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# --- certificates ---------------------------------------------------------

_certs_dir = None


def certificates():
    """The test authority and the node's certificate, made once per test
    process by examples/make-certs. Returns the folder."""
    global _certs_dir
    if _certs_dir is None:
        folder = tempfile.mkdtemp(prefix="cloudproto-e2e-certs-")
        if not KEEP_FOLDERS:
            atexit.register(shutil.rmtree, folder, True)
        env = dict(os.environ, CERTS_DIR=folder)
        subprocess.run([os.path.join(SOURCE_DIR, "examples/make-certs"),
                        NODE_NAME], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
        _certs_dir = folder
    return _certs_dir


# --- the node -------------------------------------------------------------

# Tests whose jobs leave a witness outside their folder (a file that counts
# runs) cannot use the namespaces layer, which hides everything else from
# a job: their nodes run at the uid level, and the witness files are made
# writable by the slots' uids (witness_file).
WITNESS_CONTAINMENT = {"disable": ["namespaces"]}


def wine_path(path):
    """A path of this machine as a Windows program under Wine reads it:
    Wine's drive Z: is the root."""
    return "Z:" + path


def witness_file(path):
    """Creates `path` empty, writable by any job's uid; returns it."""
    with open(path, "ab"):
        pass
    os.chmod(path, 0o666)
    return path

# A node run as root gives each slot a uid of its own, and kills all that
# uid runs when a job ends: nodes running at once must never share one.
# Each node gets UIDS_PER_NODE uids, from this process's pid and a count.
FIRST_JOB_UID = 1_100_000_000
UIDS_PER_NODE = 64
NODES_PER_PROCESS = 16
_uid_ranges = 0


def own_uid_range():
    global _uid_ranges
    index = ((os.getpid() % 1_000_000) * NODES_PER_PROCESS +
             _uid_ranges % NODES_PER_PROCESS)
    _uid_ranges += 1
    return FIRST_JOB_UID + index * UIDS_PER_NODE

class NodeError(Exception):
    pass


class SubmitHung(AssertionError):
    """cloud-submit did not end in time: a failure, not a test error."""


class Node:
    """One cloud-node in its own temporary folder, listening on free
    loopback ports (TLS and plain). Limits override the [limits] table;
    runtimes, if given, replace the default runtimes ({name: (extension,
    [command...])}).

    A federation test names the node, gives the folder that holds ca.crt
    and <name>.crt/.key, fixes the ports (peers must know them before the
    node starts; 0 = any free port) and appends its own tables
    (extra_config) to the configuration. `parent` is where the node's
    folder is made; `own_certs` copies the certificate and key into
    it."""

    DEFAULT_LIMITS = {
        "slots": 4,
        "default_timeout_seconds": 30,
        "max_timeout_seconds": 120,
    }

    def __init__(self, limits=None, runtimes=None, log_level="info",
                 plain=True, name=NODE_NAME, certs=None, tls_port=0,
                 plain_port=0, extra_config="", containment=None,
                 run_as=None, parent=None, own_certs=False, windows=False):
        self.folder = tempfile.mkdtemp(prefix="cloudproto-e2e-node-",
                                       dir=parent)
        # Jobs' uids come from the work folder's parents: others must be
        # able to cross them (mkdtemp makes them 0700).
        os.chmod(self.folder, 0o711)
        self.name = name
        # A Windows node under Wine reads its folders as drive Z:, which
        # Wine maps to the root of this machine.
        self.windows = windows
        self.certs = certs or certificates()
        self.ca = os.path.join(self.certs, "ca.crt")
        self.limits = dict(self.DEFAULT_LIMITS)
        self.limits.update(limits or {})
        self.runtimes = runtimes
        self.log_level = log_level
        self.plain = plain
        self.listen_ports = (tls_port, plain_port)
        self.extra_config = extra_config
        self.containment = dict(containment or {})
        self.containment.setdefault("first_uid", own_uid_range())
        self.spool_dir = os.path.join(self.folder, "spool")
        self.work_dir = os.path.join(self.folder, "work")
        self.outbox_dir = os.path.join(self.folder, "outbox")
        self.files_dir = os.path.join(self.folder, "files")
        os.makedirs(self.files_dir)
        os.chmod(self.files_dir, 0o777)  # jobs' witnesses, at the uid level
        self.config_path = os.path.join(self.folder, "node.toml")
        self.log_path = os.path.join(self.folder, "node.log")
        self.process = None
        self.tls_port = None
        self.plain_port = None
        self.starts = 0
        self._log_offset = 0
        self.run_as = run_as
        if run_as or own_certs:
            self._give_to(run_as or (os.getuid(), os.getgid()))
        self._write_config()
        if run_as:
            os.chown(self.config_path, *run_as)

    def _give_to(self, owner):
        """An ordinary user's node: its folder and its own copy of the
        certificate and key are that user's."""
        certs = os.path.join(self.folder, "certs")
        os.makedirs(certs)
        for name in ("ca.crt", self.name + ".crt", self.name + ".key"):
            shutil.copy(os.path.join(self.certs, name), certs)
        self.certs = certs
        for root, dirs, files in os.walk(self.folder):
            for entry in [root] + [os.path.join(root, f) for f in files]:
                os.chown(entry, *owner)

    # configuration

    def native(self, path):
        """`path` as the node reads it."""
        return wine_path(path) if self.windows else path

    def _write_config(self):
        q = toml_string

        def path(value):
            return toml_string(self.native(value))
        text = ["[node]",
                "name = %s" % q(self.name),
                "spool_dir = %s" % path(self.spool_dir),
                "work_dir = %s" % path(self.work_dir),
                "log_level = %s" % q(self.log_level),
                "",
                "[listen]",
                'tls = ["127.0.0.1:%d"]' % self.listen_ports[0]]
        if self.plain:
            text.append('plain = ["127.0.0.1:%d"]' % self.listen_ports[1])
        text += ["",
                 "[tls]",
                 "certificate = %s" % path(os.path.join(self.certs,
                                                      self.name + ".crt")),
                 "private_key = %s" % path(os.path.join(self.certs,
                                                      self.name + ".key")),
                 "",
                 "[limits]"]
        for key, value in sorted(self.limits.items()):
            text.append("%s = %d" % (key, value))
        text += ["",
                 "[mail]",
                 'from = "cloud-node@e2e.example"',
                 "outbox_dir = %s" % path(self.outbox_dir)]
        for name, (extension, command) in sorted((self.runtimes or
                                                  {}).items()):
            text += ["",
                     "[runtimes.%s]" % name,
                     "extension = %s" % q(extension),
                     "command = [%s]" % ", ".join(q(w) for w in command)]
        text += ["", "[containment]"]
        for key, value in sorted(self.containment.items()):
            if isinstance(value, list):
                value = "[%s]" % ", ".join(q(v) for v in value)
            text.append("%s = %s" % (key, value))
        if self.extra_config:
            text += ["", self.extra_config]
        # Private, as an operator's should be: the node warns otherwise.
        with open(os.open(self.config_path,
                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                  "w", encoding="utf-8") as f:
            f.write("\n".join(text) + "\n")

    # life cycle

    def start(self):
        """Starts the node and waits for `node started`; reads the ports it
        bound from its `server listening` lines."""
        if self.process is not None:
            raise NodeError("node already running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(b"--- e2e harness: start %d ---\n" % self.starts)
            log.flush()
            command = [NODE_BINARY, "--config", self.config_path]
            if self.windows:
                command = [os.path.join(SOURCE_DIR, "scripts/wine-run"),
                           WINDOWS_NODE_BINARY, "--config",
                           self.native(self.config_path)]
            if self.run_as:
                uid, gid = self.run_as
                command = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
                           "--clear-groups"] + command
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.folder)

        limit = (WINDOWS_START_TIMEOUT_SECONDS if self.windows
                 else START_TIMEOUT_SECONDS)
        deadline = time.monotonic() + limit
        while True:
            text = self.log_since_start()
            if STARTED.search(text):
                break
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise NodeError("cloud-node exited %s while starting:\n%s"
                                % (code, text[-3000:]))
            if time.monotonic() > deadline:
                self.kill()
                raise NodeError("no 'node started' within %ds:\n%s"
                                % (limit, text[-3000:]))
            time.sleep(0.02)

        ports = {"yes": [], "no": []}
        for port, tls in LISTENING.findall(text):
            ports[tls].append(int(port))
        if len(ports["yes"]) != 1 or len(ports["no"]) != (1 if self.plain
                                                           else 0):
            raise NodeError("unexpected listening lines: %r\n%s"
                            % (ports, text[-3000:]))
        self.tls_port = ports["yes"][0]
        self.plain_port = ports["no"][0] if self.plain else None
        return self

    def stop(self, timeout=STOP_GRACE_SECONDS):
        """SIGTERM, then SIGKILL if the node is still there after
        `timeout` seconds. Returns the exit status (None if killed)."""
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        self.process = None
        return code

    def kill(self):
        """SIGKILL: the node crashes, as far as it can tell."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.process = None

    def restart(self):
        """A new process on the same configuration and spool."""
        self.stop()
        return self.start()

    def close(self):
        self.stop()
        if not KEEP_FOLDERS:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def is_alive(self):
        return self.process is not None and self.process.poll() is None

    # the log

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_since_start(self):
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, lines=40):
        if not os.path.exists(self.log_path):
            return "(no log: the node's folder is already removed)"
        return "\n".join(self.log_text().splitlines()[-lines:])

    def crash_lines(self):
        return [line for line in self.log_text().splitlines()
                if CRASHED.search(line)]

    def wait_for_log(self, pattern, timeout=10, count=1):
        """Waits until the current run's log matches `pattern` `count`
        times; returns the matches."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.findall(self.log_since_start())
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise NodeError("log has %d of %d %r after %ss:\n%s"
                                % (len(found), count, pattern, timeout,
                                   self.log_tail()))
            time.sleep(0.05)

    # files for jobs

    def file(self, name, data):
        """Writes `data` (bytes or str) into the node's folder for the
        tests' own files; returns the path."""
        path = os.path.join(self.files_dir, name)
        with open(path, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    # cloud-submit

    def submit_args(self, plain=False):
        if plain:
            return ["--plain", "--node", "127.0.0.1:%d" % self.plain_port]
        return ["--ca", self.ca, "--node", "127.0.0.1:%d" % self.tls_port]

    def cloud_submit(self, *args, plain=False, timeout=None, where=None):
        """Runs cloud-submit against this node (or with `where` instead of
        the --ca/--node/--plain options); (exit code, stdout bytes, stderr
        bytes). A run that does not end in time is a failure of the test,
        with what cloud-submit had written so far."""
        if timeout is None:
            waits = "--wait" in args or "-w" in args
            timeout = (SUBMIT_WAIT_TIMEOUT_SECONDS if waits
                       else SUBMIT_TIMEOUT_SECONDS)
        env = {k: v for k, v in os.environ.items()
               if k not in ("CLOUD_NODE", "CLOUD_CA")}
        if where is None:
            where = self.submit_args(plain)
        command = [SUBMIT_BINARY] + list(where) + list(args)
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=timeout,
                                  env=env)
        except subprocess.TimeoutExpired as e:
            raise SubmitHung("cloud-submit still running after %ss (killed):"
                             "\n  %s\n  stdout: %r\n  stderr: %r"
                             % (timeout, " ".join(command),
                                (e.stdout or b"")[-500:],
                                (e.stderr or b"")[-1500:])) from None
        return done.returncode, done.stdout, done.stderr

    def submit(self, script, descriptor_text, *flags, plain=False,
               timeout=None):
        """Hands a job in with cloud-submit: script bytes (or str) and the
        descriptor's text, written to files first."""
        stem = new_job_id()
        script_path = self.file(stem + ".script", script)
        descriptor_path = self.file(stem + ".toml", descriptor_text)
        return self.cloud_submit(*flags, script_path, descriptor_path,
                                 plain=plain, timeout=timeout)

    # raw clients

    def tls_client(self, **kw):
        return Client.tls(self.tls_port, self.ca, **kw)

    def plain_client(self, **kw):
        return Client.plain(self.plain_port, **kw)

    def client(self, tls, **kw):
        return self.tls_client(**kw) if tls else self.plain_client(**kw)

    # the outbox

    def mail_path(self, job_id):
        return os.path.join(self.outbox_dir, job_id + ".eml")

    def mail(self, job_id, timeout=MAIL_TIMEOUT_SECONDS):
        """The job's result mail, parsed with the default policy; waits
        for it to appear."""
        path = self.mail_path(job_id)
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise NodeError("no %s after %ss; outbox holds %r\n%s"
                                % (path, timeout,
                                   os.listdir(self.outbox_dir)
                                   if os.path.isdir(self.outbox_dir) else [],
                                   self.log_tail()))
            time.sleep(0.05)
        with open(path, "rb") as f:
            raw = f.read()
        return raw, email.message_from_bytes(raw, policy=email.policy.default)


def mail_leaf_bytes(message):
    """The decoded octets of every non-multipart part, joined."""
    out = b""
    for part in message.walk():
        if part.is_multipart():
            continue
        out += part.get_payload(decode=True) or b""
    return out


# --- raw protocol clients -------------------------------------------------

class Closed(Exception):
    pass


class Reply:
    def __init__(self, code, lines):
        self.code = code    # int
        self.lines = lines  # the text after "NNN-" / "NNN ", one per line
        self.payload = None

    @property
    def text(self):
        return "\n".join(self.lines)

    def fields(self):
        """KEY value lines as a dict (a report)."""
        out = {}
        for line in self.lines:
            key, _, value = line.partition(" ")
            out[key] = value
        return out

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)


class Client:
    """A peer speaking raw lines. send() writes octets as they are;
    line() adds CRLF; reply() reads one whole (multi-line) reply."""

    def __init__(self, sock, timeout=REPLY_TIMEOUT_SECONDS):
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    @staticmethod
    def _connect(port, rcvbuf, source=None):
        """A TCP connection to the node; rcvbuf (octets) fixes the receive
        buffer before connecting, so that a client that stops reading
        holds the node back soon; source (a 127.0.0.x address) is where
        the connection comes from."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(10)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    @classmethod
    def plain(cls, port, greet=True, rcvbuf=None, source=None, **kw):
        sock = cls._connect(port, rcvbuf, source)
        client = cls(sock, **kw)
        if greet:
            client.greeting = client.reply()
        return client

    @classmethod
    def tls(cls, port, ca, greet=True, rcvbuf=None, certificate=None,
            source=None, **kw):
        """certificate: (certificate file, key file) to present, as a
        peer does; None for a customer, who has none."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                             cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if certificate is not None:
            context.load_cert_chain(*certificate)
        sock = cls._connect(port, rcvbuf, source)
        sock = context.wrap_socket(sock, server_hostname="localhost")
        client = cls(sock, **kw)
        if greet:
            client.greeting = client.reply()
        return client

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # sending

    def send(self, data):
        self.sock.sendall(data)

    def line(self, text):
        self.send(text.encode("utf-8") + b"\r\n")

    def command(self, text):
        self.line(text)
        return self.reply()

    def hello(self, name="e2e"):
        reply = self.command("HELLO " + name)
        if reply.code != 250:
            raise AssertionError("HELLO refused: %r" % reply)
        return reply

    def submit(self, job_id, descriptor_text, script, params=""):
        """SUBMIT line and payload in one write; returns the reply."""
        d = descriptor_text.encode("utf-8")
        s = script.encode("utf-8") if isinstance(script, str) else script
        head = "SUBMIT %s %d %d%s\r\n" % (job_id, len(d), len(s),
                                           " " + params if params else "")
        self.send(head.encode("ascii") + d + s)
        return self.reply()

    def result(self, job_id):
        """RESULT; (reply, stdout bytes, stderr bytes), the outputs None
        when the reply announces no payload."""
        reply = self.command("RESULT " + job_id)
        if reply.payload is None:
            return reply, None, None
        out_size, _ = reply.payload_sizes
        return reply, reply.payload[:out_size], reply.payload[out_size:]

    def wait_final(self, job_id, seconds=60, step=5):
        """WAIT until the job is final, asking again every `step` seconds
        (None: one WAIT for all the time left); returns the final state
        word. Short steps keep a test that is not about WAIT from waiting
        out a WAIT reply that comes late."""
        deadline = time.monotonic() + seconds
        while True:
            left = max(1, int(deadline - time.monotonic()))
            ask = min(left, step) if step else left
            reply = self.command("WAIT %s %d" % (job_id, ask))
            if reply.code != 250:
                raise AssertionError("WAIT %s: %r" % (job_id, reply))
            state = reply.lines[-1].split(" ", 1)[1]
            if state in ("done", "failed"):
                return state
            if time.monotonic() > deadline:
                raise AssertionError("job %s still %s after %ss"
                                     % (job_id, state, seconds))

    # receiving

    def _fill(self, deadline):
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no reply within %ss" % self.timeout)
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def raw_line(self, deadline):
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[:end + 1])
                del self.buf[:end + 1]
                return line
            if not self._fill(deadline):
                raise Closed("closed after %r" % bytes(self.buf[:200]))

    def reply(self, timeout=None):
        """One reply; a RESULT's payload (after `250 PAYLOAD a b`) is read
        too and kept in .payload."""
        deadline = time.monotonic() + (timeout or self.timeout)
        code = None
        lines = []
        while True:
            raw = self.raw_line(deadline)
            if not raw.endswith(b"\r\n"):
                raise AssertionError("reply line without CRLF: %r" % raw)
            body = raw[:-2].decode("ascii")
            m = re.match(r"([2-5][0-9][0-9])([ -]|\Z)(.*)\Z", body, re.S)
            if not m:
                raise AssertionError("malformed reply line %r" % body)
            if code is not None and int(m.group(1)) != code:
                raise AssertionError("code changed inside a reply: %r after"
                                     " %r" % (body, lines))
            code = int(m.group(1))
            lines.append(m.group(3))
            if m.group(2) != "-":
                break
        reply = Reply(code, lines)
        m = re.fullmatch(r"PAYLOAD (\d+) (\d+)", lines[-1])
        if code == 250 and m:
            reply.payload_sizes = (int(m.group(1)), int(m.group(2)))
            reply.payload = self.read_exact(sum(reply.payload_sizes),
                                            deadline)
        return reply

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Closed("closed after %d of %d payload octets"
                             % (len(self.buf), n))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def is_closed(self, timeout=10):
        """True once the peer has closed, False if data came instead."""
        deadline = time.monotonic() + timeout
        while not self.eof and not self.buf:
            try:
                self._fill(deadline)
            except socket.timeout:
                return False
            except (OSError, ssl.SSLError):
                return True
        return not self.buf


# --- test cases -----------------------------------------------------------

class NodeTestCase(unittest.TestCase):
    """Shows the node's log tail when a test fails, and checks after
    every test that the node is alive and has logged no `crashed` line."""

    nodes = ()  # set by subclasses: the nodes to show and check

    def run(self, result=None):
        result = result or self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for node in self.current_nodes():
                sys.stderr.write("\n--- %s (log tail) ---\n%s\n"
                                 % (node.log_path, node.log_tail()))
        return result

    def current_nodes(self):
        return [n for n in self.nodes if n is not None]

    def assert_node_healthy(self, node):
        self.assertTrue(node.is_alive(),
                        "the node died:\n" + node.log_tail())
        self.assertEqual(node.crash_lines(), [],
                         "the node logged a crash")


class OneNodeTestCase(NodeTestCase):
    """One node for the whole class, started with the class's `limits`,
    checked after every test, closed at the end."""

    limits = {}
    containment = None
    node = None

    @classmethod
    def setUpClass(cls):
        cls.node = Node(limits=dict(cls.limits),
                        containment=cls.containment).start()
        cls.nodes = (cls.node,)

    @classmethod
    def tearDownClass(cls):
        cls.node.close()

    def tearDown(self):
        self.assert_node_healthy(self.node)
