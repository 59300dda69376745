"""What the federation's end-to-end tests share: three real cloud-nodes on
loopback that are each other's peers (issue 3, /work/notes/federation-
design.md), their certificates, and raw peer clients that present a
certificate. Builds on harness.py; Python 3 standard library only.

A Federation writes every node's configuration before any starts (peers
must know each other's addresses), so it picks the ports first. Each node
can be stopped, killed and started again on the same configuration and
spool. Links are watched through the nodes' `peer up` / `peer down` log
lines.
"""

import collections
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import harness
from harness import descriptor, new_job_id, toml_string

NAMES = ("provider-a", "provider-b", "provider-c")
# A certificate of the federation's authority that names no configured
# peer: it must not pass as one.
OUTSIDER = "provider-x"

CAPACITY_INTERVAL_SECONDS = 1
RELAY_TIMEOUT_SECONDS = 5
# From a start to `peer up` on every link: reconnect back-off is at most
# 5 s, plus a handshake.
LINK_TIMEOUT_SECONDS = 15
JOB_TIMEOUT_SECONDS = 40     # from hand-in to a final state at the origin

BASH = ("sh", ["/bin/bash", "{script}"])
PYTHON = ("py", ["/usr/bin/python3", "-I", "{script}"])
PERL = ("pl", ["/usr/bin/perl", "{script}"])

# Naps $3 seconds, appends the job's id ($1) to the file $2 (so that runs
# that went to their end can be counted), and says where it ran: the
# working folder lies under the runner's work_dir.
APPEND_SCRIPT = (b'sleep "$3"\n'
                 b'printf \'%s\\n\' "$1" >> "$2"\n'
                 b'echo "$1 ran in $PWD"\n')
PERL_SCRIPT = (b'use Cwd;\n'
               b'open(my $f, ">>", $ARGV[1]) or die;\n'
               b'print $f "$ARGV[0]\\n";\n'
               b'close($f);\n'
               b'print "$ARGV[0] ran in ", getcwd(), " with perl\\n";\n')


def make_certs(folder, names):
    env = dict(os.environ, CERTS_DIR=folder)
    subprocess.run([os.path.join(harness.SOURCE_DIR, "examples/make-certs")]
                   + list(names), env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=60)


class Certificates:
    """The federation's authority with a certificate per node name and one
    for OUTSIDER; and a second authority whose certificates name the same
    nodes (they must not pass as those nodes)."""

    def __init__(self, names=NAMES):
        self.folder = tempfile.mkdtemp(prefix="cloudproto-e2e-fedcerts-")
        self.other_folder = os.path.join(self.folder, "other-authority")
        make_certs(self.folder, list(names) + [OUTSIDER])
        make_certs(self.other_folder, names)
        self.ca = os.path.join(self.folder, "ca.crt")

    def pair(self, name):
        """(certificate, key) of `name` from the federation's authority."""
        return (os.path.join(self.folder, name + ".crt"),
                os.path.join(self.folder, name + ".key"))

    def other_pair(self, name):
        """(certificate, key) naming `name`, from the other authority."""
        return (os.path.join(self.other_folder, name + ".crt"),
                os.path.join(self.other_folder, name + ".key"))

    def close(self):
        if not harness.KEEP_FOLDERS:
            shutil.rmtree(self.folder, ignore_errors=True)


def fingerprint(certificate_path, colons=True):
    """"sha256:AB:CD:..." of a PEM certificate (the SHA-256 of its DER)."""
    with open(certificate_path, encoding="ascii") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    digest = hashlib.sha256(der).hexdigest().upper()
    if colons:
        digest = ":".join(digest[i:i + 2] for i in range(0, 64, 2))
    return "sha256:" + digest


def free_ports(count):
    """`count` distinct loopback ports that were free a moment ago: all
    bound at once to port 0, then released for the nodes to take."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def full_mesh(names):
    return {n: [p for p in names if p != n] for n in names}


PEER_EVENT = re.compile(r" peer (up|down)\b")


class Federation:
    """Nodes that are each other's peers, each in its own folder, with a
    shared folder for the tests' files (`folder`).

    nodes: {name: {"limits": {...}, "runtimes": {...}, "windows": bool}}
    (runtimes as harness.Node takes them; None keeps the node's defaults;
    windows: the node is the Windows build's, under Wine).
    peers: {name: [peer names]}; None is a full mesh.
    authority: False leaves [federation] authority out (every peer must
    then be pinned).
    peer_settings: {(node, peer): {"fingerprint": "sha256:...",
    "address_of": other node}}: a pin, or the address of another node
    under the peer's name (an impostor)."""

    def __init__(self, certs, nodes, peers=None, hop_limit=8,
                 capacity_interval_seconds=CAPACITY_INTERVAL_SECONDS,
                 relay_timeout_seconds=RELAY_TIMEOUT_SECONDS,
                 log_level="info", authority=True, peer_settings=None):
        self.certs = certs
        self.names = list(nodes)
        self.peers = peers if peers is not None else full_mesh(self.names)
        self.hop_limit = hop_limit
        self.authority = authority
        self.peer_settings = peer_settings or {}
        self.folder = tempfile.mkdtemp(prefix="cloudproto-e2e-fed-")
        os.chmod(self.folder, 0o711)
        harness.witness_file(os.path.join(self.folder, "runs.txt"))
        ports = free_ports(2 * len(self.names))
        self.addresses = {}
        for i, name in enumerate(self.names):
            self.addresses[name] = (ports[2 * i], ports[2 * i + 1])

        self.nodes = collections.OrderedDict()
        for name in self.names:
            spec = nodes[name] or {}
            tls_port, plain_port = self.addresses[name]
            self.nodes[name] = harness.Node(
                name=name, certs=certs.folder, tls_port=tls_port,
                plain_port=plain_port, limits=spec.get("limits"),
                runtimes=spec.get("runtimes"), log_level=log_level,
                containment=harness.WITNESS_CONTAINMENT,
                windows=spec.get("windows", False),
                extra_config=self._federation_tables(
                    name, hop_limit, capacity_interval_seconds,
                    relay_timeout_seconds, spec.get("windows", False)))

    def _federation_tables(self, name, hop_limit, interval, relay_timeout,
                           windows):
        q = toml_string
        text = ["[federation]"]
        if self.authority:
            ca = harness.wine_path(self.certs.ca) if windows else self.certs.ca
            text.append("authority = %s" % q(ca))
        text += ["hop_limit = %d" % hop_limit,
                "capacity_interval_seconds = %d" % interval,
                "relay_timeout_seconds = %d" % relay_timeout]
        for peer in self.peers.get(name, []):
            settings = self.peer_settings.get((name, peer), {})
            where = settings.get("address_of", peer)
            text += ["",
                     "[[peers]]",
                     "name = %s" % q(peer),
                     "address = %s" % q("127.0.0.1:%d"
                                        % self.addresses[where][0])]
            if "fingerprint" in settings:
                text.append("fingerprint = %s" % q(settings["fingerprint"]))
        return "\n".join(text) + "\n"

    def __getitem__(self, name):
        return self.nodes[name]

    def __iter__(self):
        return iter(self.nodes.values())

    # life cycle

    def start(self, *names, wait=True):
        """Starts the named nodes (all by default), then waits until every
        link between running nodes is up."""
        for name in names or self.names:
            self.nodes[name].start()
        if wait:
            self.wait_links()
        return self

    def stop(self, name):
        return self.nodes[name].stop()

    def kill(self, name):
        self.nodes[name].kill()

    def running(self):
        return [n for n in self.names if self.nodes[n].is_alive()]

    def close(self):
        for node in self.nodes.values():
            node.close()
        if not harness.KEEP_FOLDERS:
            shutil.rmtree(self.folder, ignore_errors=True)

    # links, as the nodes' logs tell them

    def link_state(self, name, peer):
        """'up' or 'down' as the last `peer up|down` line about `peer` in
        the current run of node `name` says; None before the first."""
        state = None
        for line in self.nodes[name].log_since_start().splitlines():
            m = PEER_EVENT.search(line)
            if m and re.search(r"(^|[\s=])%s(\s|$)" % re.escape(peer),
                               line[m.end():]):
                state = m.group(1)
        return state

    def wait_link(self, name, peer, state="up",
                  timeout=LINK_TIMEOUT_SECONDS):
        deadline = time.monotonic() + timeout
        while self.link_state(name, peer) != state:
            if time.monotonic() > deadline:
                raise harness.NodeError(
                    "%s: link to %s not %s after %ss\n%s"
                    % (name, peer, state, timeout,
                       self.nodes[name].log_tail()))
            time.sleep(0.05)

    def wait_links(self, timeout=LINK_TIMEOUT_SECONDS):
        running = self.running()
        for name in running:
            for peer in self.peers.get(name, []):
                if peer in running:
                    self.wait_link(name, peer, "up", timeout)

    # clients

    def customer(self, name, **kw):
        """A TLS client without a certificate, as a customer is."""
        node = self.nodes[name]
        return harness.Client.tls(node.tls_port, self.certs.ca, **kw)

    def peer_client(self, name, as_peer, other_authority=False, **kw):
        """A TLS client of node `name` presenting the certificate of
        `as_peer` (from the other authority if asked)."""
        node = self.nodes[name]
        pair = (self.certs.other_pair(as_peer) if other_authority
                else self.certs.pair(as_peer))
        return harness.Client.tls(node.tls_port, self.certs.ca,
                                  certificate=pair, **kw)

    # what happened where

    def ran_at(self, job_id):
        """Names of the nodes whose logs (all runs) show the job started,
        once per start."""
        out = []
        for name, node in self.nodes.items():
            started = re.findall(r"\b%s job started\b" % job_id,
                                 node.log_text())
            out += [name] * len(started)
        return out

    def runner_by_folder(self, stdout):
        """The node under whose work_dir a job said it ran ("... ran in
        <folder>"), or None."""
        m = re.search(rb" ran in (\S+)", stdout)
        if not m:
            return None
        folder = m.group(1).decode("utf-8", "replace")
        for name, node in self.nodes.items():
            if folder.startswith(node.work_dir + os.sep):
                return name
        return None


# --- a peer that misbehaves on purpose -----------------------------------

class FakePeer:
    """A peer that a real node links to, played by the test: it listens
    on the address configured for `name`, shows `name`'s certificate,
    and answers HELLO with `runtimes`, CAPACITY with room for every
    runtime (or, once `capacity_ok` CAPACITY were answered on any link,
    with `capacity_reply`, a reply line such as "530 ..."), and RELAY as
    `relay_action` says:

      ("reply", "452 {id} not stored: insufficient storage")
          reads the payload, then sends the line ({id}: the job's id);
      ("cut", n)
          reads the line and n payload octets, then drops the
          connection with the rest unread.

    `events` lists (monotonic time, verb, first argument) of every
    command, `connections` counts the links made to it."""

    def __init__(self, certs, name, port, runtimes=("work",),
                 max_job_bytes=1048576, free_slots=5, capacity_reply=None,
                 capacity_ok=1, relay_action=("reply", "452 {id} not stored:"
                                               " insufficient storage")):
        self.name = name
        self.runtimes = list(runtimes)
        self.max_job_bytes = max_job_bytes
        self.free_slots = free_slots
        self.capacity_reply = capacity_reply
        self.capacity_ok = capacity_ok
        self.relay_action = relay_action
        self.events = []
        self.connections = 0
        self.capacities = 0
        self.lock = threading.Lock()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*certs.pair(name))
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # A small receive buffer: a sender of a large payload is held
        # back at once when this peer stops reading.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(8)
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def commands(self, verb):
        with self.lock:
            return [e for e in self.events if e[1] == verb]

    def _accept(self):
        while not self.closed:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,),
                             daemon=True).start()

    def _serve(self, sock):
        conn = None
        try:
            sock.settimeout(30)
            conn = self.context.wrap_socket(sock, server_side=True)
            with self.lock:
                self.connections += 1
            self._session(conn)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            # No close_notify: a cut is a cut.
            (conn or sock).close()

    def _session(self, conn):
        buf = bytearray()

        def read_line():
            while b"\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    raise EOFError
                buf.extend(data)
            end = buf.index(b"\r\n")
            line = bytes(buf[:end]).decode("ascii")
            del buf[:end + 2]
            return line

        def read_exact(n):
            while len(buf) < n:
                data = conn.recv(65536)
                if not data:
                    raise EOFError
                buf.extend(data)
            del buf[:n]

        def send(*lines):
            text = "".join("%s%s%s\r\n" % (line[:3], "-" if i < len(lines)
                                             - 1 else " ", line[4:])
                           for i, line in enumerate(lines))
            conn.sendall(text.encode("ascii"))

        send("220 %s cloudproto/1 ready" % self.name)
        try:
            while True:
                words = read_line().split()
                verb = words[0].upper() if words else ""
                with self.lock:
                    self.events.append((time.monotonic(), verb,
                                        words[1] if len(words) > 1 else ""))
                if verb == "HELLO":
                    send("250 %s hello %s" % (self.name, words[1]),
                         "250 VERSION 1",
                         "250 RUNTIMES " + " ".join(self.runtimes),
                         "250 MAX-JOB-BYTES %d" % self.max_job_bytes,
                         "250 MAX-OUTPUT-BYTES 1048576",
                         "250 MAX-TIMEOUT-SECONDS 3600",
                         "250 RELAY 8", "250 CAPACITY", "250 RETURN")
                elif verb == "CAPACITY":
                    with self.lock:
                        self.capacities += 1
                        refuse = (self.capacity_reply and
                                  self.capacities > self.capacity_ok)
                    if refuse:
                        send(self.capacity_reply)
                        continue
                    send("250 %s capacity" % self.name,
                         *["250 RUNTIME %s %d 0" % (r, self.free_slots)
                           for r in self.runtimes])
                elif verb == "RELAY":
                    job_id, total = words[1], int(words[2]) + int(words[3])
                    kind, what = self.relay_action
                    if kind == "cut":
                        read_exact(what)
                        return
                    read_exact(total)
                    send(what.format(id=job_id))
                elif verb == "QUIT":
                    send("221 %s closing" % self.name)
                    return
                else:
                    send("502 not played by this fake")
        except EOFError:
            return


# --- peer protocol lines --------------------------------------------------

def relay(client, job_id, descriptor_text, script, hops, trace,
          payload=True, params=None):
    """RELAY line and (unless payload=False) the payload in one write;
    returns the reply. trace: a list of names; params replaces HOPS= and
    TRACE= when given."""
    d = descriptor_text.encode("utf-8")
    s = script.encode("utf-8") if isinstance(script, str) else script
    if params is None:
        params = "HOPS=%d TRACE=%s" % (hops, ",".join(trace))
    head = "RELAY %s %d %d%s\r\n" % (job_id, len(d), len(s),
                                      " " + params if params else "")
    client.send(head.encode("ascii") + (d + s if payload else b""))
    return client.reply()


def return_result(client, job_id, report, stdout=b"", stderr=b"",
                  payload=True):
    """RETURN with a report ([(KEY, value)...]) and outputs; returns the
    reply."""
    text = "".join("%s %s\r\n" % kv for kv in report).encode("ascii")
    head = "RETURN %s %d %d %d\r\n" % (job_id, len(text), len(stdout),
                                        len(stderr))
    client.send(head.encode("ascii")
                + (text + stdout + stderr if payload else b""))
    return client.reply()


def done_report(job_id, node, runtime="bash"):
    """A plausible report of a job that ran at `node` and exited 0."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return [("JOB", job_id), ("STATE", "done"), ("RUNTIME", runtime),
            ("NODE", node), ("ACCEPTED", now), ("STARTED", now),
            ("FINISHED", now), ("OUTCOME", "exited"), ("EXIT-CODE", "0"),
            ("DURATION-MS", "1"), ("STDOUT-BYTES", "0"),
            ("STDERR-BYTES", "0"), ("STDOUT-TRUNCATED", "no"),
            ("STDERR-TRUNCATED", "no")]


def capabilities(hello_reply):
    """{KEYWORD: [params]} of a HELLO reply (keywords upper-cased)."""
    out = {}
    for line in hello_reply.lines[1:]:
        words = line.split()
        if words:
            out[words[0].upper()] = words[1:]
    return out


def runs_in(path):
    """The ids appended to `path`, in order (jobs that ran to their end)."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return f.read().decode("ascii").split()


# --- test cases -----------------------------------------------------------

class FederationTestCase(harness.NodeTestCase):
    """Certificates made once per class. `federation()` starts a
    federation for one test and closes it afterwards; tearDown checks
    that every node that should be running is alive and none crashed."""

    certs = None
    fed = None

    @classmethod
    def setUpClass(cls):
        cls.certs = Certificates()

    @classmethod
    def tearDownClass(cls):
        cls.certs.close()

    def run(self, result=None):
        # The federation is closed after NodeTestCase.run has shown the
        # nodes' logs of a failed test, not before (as a cleanup would).
        self._closers = []
        try:
            return super().run(result)
        finally:
            for close in reversed(self._closers):
                close()

    def federation(self, nodes, start=True, **kw):
        fed = Federation(self.certs, nodes, **kw)
        self.fed = fed
        self.nodes = list(fed)
        self._closers.append(fed.close)
        if start:
            fed.start()
        return fed

    def tearDown(self):
        if self.fed is None:
            return
        for node in self.fed:
            if not os.path.exists(node.log_path):
                continue  # never started
            self.assertEqual(node.crash_lines(), [],
                             "%s logged a crash" % node.name)
            if node.process is not None:
                self.assertTrue(node.is_alive(), "%s died:\n%s"
                                % (node.name, node.log_tail()))

    # jobs

    def append_job(self, nap=0.5, runtime="bash", reply_to=None,
                   path=None):
        """(id, descriptor) of a job that naps, then appends its id to
        `path` (default: the federation's runs file)."""
        job_id = new_job_id()
        path = path or self.runs_path()
        desc = descriptor(runtime, args=[job_id, path, str(nap)],
                          reply_to=reply_to or "%s@example.org"
                          % runtime)
        return job_id, desc

    def runs_path(self):
        return os.path.join(self.fed.folder, "runs.txt")

    def hand_in(self, client, job_id, desc, script=APPEND_SCRIPT):
        reply = client.submit(job_id, desc, script)
        self.assertEqual((reply.code, reply.text),
                         (250, job_id + " accepted"), reply)

    def report(self, name, job_id):
        with self.fed.customer(name) as c:
            c.hello()
            reply = c.command("STATUS " + job_id)
        self.assertEqual(reply.code, 250, "STATUS %s at %s: %r"
                         % (job_id, name, reply))
        return reply.fields()

    def wait_for_state(self, name, job_id, state, timeout=15):
        """Polls STATUS at node `name` until the job is in `state`;
        returns that report."""
        deadline = time.monotonic() + timeout
        seen = []
        with self.fed.customer(name) as c:
            c.hello()
            while True:
                fields = c.command("STATUS " + job_id).fields()
                if fields.get("STATE") == state:
                    return fields
                if not seen or seen[-1] != fields.get("STATE"):
                    seen.append(fields.get("STATE"))
                if time.monotonic() > deadline:
                    self.fail("job %s at %s never %s; states seen: %r"
                              % (job_id, name, state, seen))
                time.sleep(0.05)

    def status_code(self, name, job_id):
        with self.fed.customer(name) as c:
            c.hello()
            return c.command("STATUS " + job_id).code

    def wait_final(self, name, job_ids, seconds=JOB_TIMEOUT_SECONDS):
        """Waits until each job is final at node `name`; {id: state}."""
        deadline = time.monotonic() + seconds
        states = {}
        with self.fed.customer(name) as c:
            c.hello()
            for job_id in job_ids:
                left = max(1, deadline - time.monotonic())
                states[job_id] = c.wait_final(job_id, left, step=2)
        return states

    def result(self, name, job_id):
        """(report fields, stdout, stderr) of RESULT at node `name`."""
        with self.fed.customer(name) as c:
            c.hello()
            reply, out, err = c.result(job_id)
        self.assertEqual(reply.code, 250, "RESULT %s at %s: %r"
                         % (job_id, name, reply))
        return reply.fields(), out, err

    def assert_ran_once_each(self, job_ids):
        """Each job's script ran to its end exactly once (the runs file),
        and nothing else ran."""
        runs = collections.Counter(runs_in(self.runs_path()))
        wrong = {j: runs[j] for j in job_ids if runs[j] != 1}
        self.assertEqual(wrong, {}, "jobs whose script did not run to its"
                         " end exactly once (id: runs); started at: %r"
                         % {j: self.fed.ran_at(j) for j in wrong})
        extra = set(runs) - set(job_ids)
        self.assertEqual(extra, set(), "runs of unknown jobs")
