"""Writes the seed corpora of the fuzz targets, fuzz/corpus/<target>/,
from the test vectors of proto-spec/vectors and a few mail server
transcripts written here. Run it again after a vector changes:

    /usr/bin/python3 fuzz/make_corpus.py

Seeds are kept small: libFuzzer grows its corpus in a work folder
(scripts/fuzz), never here.
"""

import hashlib
import os
import re
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "proto-spec", "vectors")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

# A seed longer than this is cut: a long one slows every mutation.
MAX_SEED_BYTES = 2048
JOB_ID = "vectorsjobid0123456789abcd"

ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)")
SIMPLE = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"0": b"\0", b"\\": b"\\",
          b'"': b'"'}


def unescape(text):
    def one(m):
        e = m.group(1)
        if e.startswith(b"x") and len(e) == 3:
            return bytes([int(e[1:], 16)])
        return SIMPLE.get(e, e)
    return ESCAPE.sub(one, text)


def write(target, name, octets):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(octets[:MAX_SEED_BYTES])


def replies():
    """Each vector's wire octets, for the reply parser."""
    path = os.path.join(VECTORS, "replies.txt")
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    n = 0
    for line in lines:
        if not line.strip() or line.startswith(b"#"):
            continue
        wire = line.split(b" => ", 1)[0]
        n += 1
        write("fuzz_reply_parser", "reply-%02d" % n, unescape(wire))


def sessions():
    """What a client sends in each session script, for the line reader,
    behind the two octets that pick its limit and its chunking."""
    folder = os.path.join(VECTORS, "sessions")
    for i, name in enumerate(sorted(os.listdir(folder))):
        sent = b""
        with open(os.path.join(folder, name), "rb") as f:
            for step in f.read().split(b"\n"):
                step = step.replace(b"{JOB_ID}", JOB_ID.encode())
                if step.startswith(b"C: "):
                    sent += step[3:] + b"\r\n"
                elif step.startswith(b"C+ "):
                    sent += unescape(step.split(b" ", 2)[2])
        # Octet 0 picks the limit (7: 1000, the norm's), octet 1 the chunks.
        control = bytes([7 if i % 2 == 0 else i % 7, i])
        write("fuzz_line_reader", name[:-len(".txt")], control + sent)


def descriptors():
    folder = os.path.join(VECTORS, "descriptors")
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.getsize(path) <= MAX_SEED_BYTES:
            shutil.copyfile(path, os.path.join(CORPUS, "fuzz_descriptor",
                                               name))


# What mail servers say: greetings, EHLO with and without AUTH and
# STARTTLS, the older "AUTH=" form, AUTH LOGIN's challenges, refusals.
SMTP_REPLIES = {
    "postfix": b"220 mx.example.org ESMTP Postfix\r\n"
               b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
               b"250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
               b"250 SMTPUTF8\r\n220 2.0.0 Ready to start TLS\r\n",
    "auth": b"250-mail.example.org Hello node\r\n250-AUTH PLAIN LOGIN\r\n"
            b"250-AUTH=PLAIN LOGIN\r\n250 HELP\r\n235 2.7.0 Authenticated\r\n",
    "auth-login": b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
                  b"535 5.7.8 Authentication credentials invalid\r\n",
    "transaction": b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                   b"354 End data with <CR><LF>.<CR><LF>\r\n"
                   b"250 2.0.0 Ok: queued as 4Q1\r\n221 2.0.0 Bye\r\n",
    "ehlo-refused": b"220 old.example.org\n502 command not implemented\n"
                    b"250 old.example.org\n",
    "split": b"250-first\r\n250-auth login\r\n250-Auth=cram-md5 plain\r\n"
             b"250 8bitmime\r\n451 4.3.0 try later\r\n",
}

MESSAGES = {
    "result-mail": b"From: node@example.org\r\nTo: alice@example.org\r\n"
                   b"Subject: job done\r\n\r\nexit status 0\r\n",
    "dots": b"Subject: x\n\n.\n..\n.hidden\r\n.\r\nQUIT\r\n",
    "bare-cr": b"line one\rline two\r\rthree",
    "no-final-line-end": b"a\r\nb",
}

FEDERATION_LINES = {
    "capacity": b"RUNTIME bash 2 0",
    "capacity-large": b"RUNTIME perl 0 123456789012345678",
    "trace": b"provider-a,provider-b.example,C",
    "count": b"18446744073709551615",
    "words": b"RELAY  job-1  40 8 HOPS=2 TRACE=a,b",
}

JOB_REPORTS = {
    "done": b"JOB vectorsjobid0123456789abcd\nSTATE done\nRUNTIME bash\n"
            b"NODE provider-c\nRELAYED-TO provider-b\nTRACE provider-a,b\n"
            b"ACCEPTED 2026-12-03T17:42:01.123Z\n"
            b"STARTED 2026-12-03T17:42:01.200Z\n"
            b"FINISHED 2026-12-03T17:42:02.999Z\nOUTCOME exited\n"
            b"EXIT-CODE 3\nDURATION-MS 1799\nSTDOUT-BYTES 12\n"
            b"STDERR-BYTES 0\nSTDOUT-TRUNCATED no\nSTDERR-TRUNCATED yes\n"
            b"CONTAINMENT 4 limits uid namespaces cgroup seccomp\n"
            b"LIMIT-HIT memory\nMAIL failed\nMAIL-ERROR 550 no such user",
    "failed": b"JOB x\nSTATE failed\nERROR cannot execute bash\nSIGNAL 9\n"
              b"OUTCOME signalled\nFUTURE-KEY kept for newer nodes",
    "timestamps": b"JOB t\nSTATE queued\nACCEPTED 1970-01-01T00:00:00.000Z\n"
                  b"STARTED 2024-02-29T23:59:60.999Z\n"
                  b"FINISHED 9999-12-31T23:59:59.999Z",
}


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    os.makedirs(os.path.join(CORPUS, "fuzz_descriptor"))
    replies()
    sessions()
    descriptors()
    for target, seeds in (("fuzz_smtp_reply", SMTP_REPLIES),
                          ("fuzz_smtp_data_block", MESSAGES),
                          ("fuzz_federation_lines", FEDERATION_LINES),
                          ("fuzz_job_report", JOB_REPORTS)):
        for name, octets in seeds.items():
            write(target, name, octets)


if __name__ == "__main__":
    main()
