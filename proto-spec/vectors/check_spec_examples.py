#!/usr/bin/python3
"""Checks the example sessions of proto-spec/cloudproto-v1.md.

A wrong octet count makes the norm wrong, so every count in the examples
is checked here rather than trusted:

- each `C+ n text` / `S+ n text` line stands for exactly n octets;
- the octets after `C: SUBMIT <id> <d> <s>` or `C: RELAY <id> <d> <s>` add
  up to d + s, and the descriptor ends on a line boundary of the example;
- the octets after `C: RETURN <id> <r> <a> <b>` add up to r + a + b, the
  report and the standard output end on line boundaries, every report
  line ends with CRLF, its JOB is <id>, and its STDOUT-BYTES /
  STDERR-BYTES say a and b;
- the octets after `S: 250 PAYLOAD <a> <b>` add up to a + b, and the
  STDOUT-BYTES / STDERR-BYTES of that reply say a and b;
- a `552` reply names the sum of the counts of the SUBMIT or RELAY before
  it; no payload follows a `552` or a `530`;
- no line of the document is wider than 99 columns.

    /usr/bin/python3 proto-spec/vectors/check_spec_examples.py

Prints what is wrong and exits 1, or prints "ok".
"""

import pathlib
import re
import sys

SPEC = pathlib.Path(__file__).resolve().parent.parent / "cloudproto-v1.md"
MAX_COLUMNS = 99
MAX_LINE_BYTES = 1000


def unescape(text):
    """The notation of spec Section 2.4, plus `[N x "c"]` for N octets c."""
    out = bytearray()
    i = 0
    while i < len(text):
        m = re.match(r'\[(\d+) x "(.)"\]', text[i:])
        if m:
            out += m.group(2).encode() * int(m.group(1))
            i += m.end()
        elif text[i] == "\\":
            nxt = text[i + 1]
            if nxt == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
            else:
                out += {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\"}[nxt]
                i += 2
        else:
            out += text[i].encode()
            i += 1
    return bytes(out)


def code_blocks(lines):
    block, start = None, 0
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            if block is None:
                block, start = [], number + 1
            else:
                yield start, block
                block = None
        elif block is not None:
            block.append(line)


class Payload:
    """Octets announced by a line, in parts (descriptor and script; report,
    standard output and standard error), filled by the C+ or S+ lines that
    follow it."""

    def __init__(self, line, what, parts, job_id=None):
        self.line, self.what, self.parts = line, what, parts
        self.job_id = job_id
        self.data = b""
        self.bounds = {0}

    def add(self, data):
        self.data += data
        self.bounds.add(len(self.data))

    def check(self, problems):
        want = sum(self.parts)
        if len(self.data) != want:
            problems.append("line %d: %s announces %s = %d octets, the example"
                            " sends %d" % (self.line, self.what,
                                           " + ".join(map(str, self.parts)),
                                           want, len(self.data)))
            return
        edge = 0
        for part in self.parts[:-1]:
            edge += part
            if edge not in self.bounds:
                problems.append("line %d: %s: a part ends at octet %d, inside"
                                " a line of the example"
                                % (self.line, self.what, edge))
        if self.what == "RETURN":
            self.check_report(problems)

    def check_report(self, problems):
        report = self.data[:self.parts[0]]
        fields = {}
        for line in report.split(b"\r\n")[:-1]:
            key, _, value = line.decode("ascii", "replace").partition(" ")
            fields[key] = value
        bare = report.replace(b"\r\n", b"")
        if not report.endswith(b"\r\n") or b"\n" in bare or b"\r" in bare:
            problems.append("line %d: RETURN: every report line must end"
                            " with CRLF" % self.line)
        if fields.get("JOB") != self.job_id:
            problems.append("line %d: RETURN of %s carries the report of %s"
                            % (self.line, self.job_id, fields.get("JOB")))
        counts = (fields.get("STDOUT-BYTES"), fields.get("STDERR-BYTES"))
        if counts != (str(self.parts[1]), str(self.parts[2])):
            problems.append("line %d: RETURN sends %d + %d output octets but"
                            " the report says %s" % (self.line, self.parts[1],
                                                     self.parts[2], counts))


def check_block(start, block, problems):
    sent = None  # Payload after a C: line
    shown = None  # Payload after an S: 250 PAYLOAD line
    report = {}
    last_counts = None

    def close():
        nonlocal sent, shown
        for payload in (sent, shown):
            if payload:
                payload.check(problems)
        sent = shown = None

    for offset, line in enumerate(block):
        number = start + offset
        m = re.match(r"([CS])\+ (\d+) (.*)\Z", line)
        if m:
            data = unescape(m.group(3))
            if len(data) != int(m.group(2)):
                problems.append("line %d: %s+ says %s octets, its text is %d"
                                % (number, m.group(1), m.group(2), len(data)))
            target = sent if m.group(1) == "C" else shown
            if target:
                target.add(data)
            continue

        if line.startswith("C: ") or line.startswith("S: "):
            if len(line) - 3 + 2 > MAX_LINE_BYTES:
                problems.append("line %d: protocol line too long" % number)
        if line.startswith("C:"):
            close()
            m = re.match(r"C: (SUBMIT|RELAY) \S+ (\d+) (\d+)", line)
            if m:
                d, s = int(m.group(2)), int(m.group(3))
                last_counts = d + s
                sent = Payload(number, m.group(1), [d, s])
            m = re.match(r"C: RETURN (\S+) (\d+) (\d+) (\d+)", line)
            if m:
                sent = Payload(number, "RETURN",
                               [int(g) for g in m.group(2, 3, 4)], m.group(1))
        elif line.startswith("S:"):
            if sent and re.match(r"S: (552|530)", line):
                sent = None  # no payload follows a 552 or a 530
            close()
            m = re.match(r"S: 250[- ]((STDOUT|STDERR)-BYTES) (\d+)\Z", line)
            if m:
                report[m.group(1)] = int(m.group(3))
            m = re.match(r"S: 250 PAYLOAD (\d+) (\d+)\Z", line)
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                shown = Payload(number, "PAYLOAD", [a, b])
                if report and (report.get("STDOUT-BYTES"),
                               report.get("STDERR-BYTES")) != (a, b):
                    problems.append("line %d: PAYLOAD %d %d but the report says"
                                    " %s" % (number, a, b, report))
                report = {}
            m = re.match(r"S: 552 job of (\d+) octets", line)
            if m and int(m.group(1)) != last_counts:
                problems.append("line %d: 552 names %s octets, the %s asked"
                                " for %s" % (number, m.group(1),
                                             "SUBMIT or RELAY", last_counts))
    close()


def main():
    lines = SPEC.read_text(encoding="utf-8").split("\n")
    problems = []
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_COLUMNS:
            problems.append("line %d: %d columns" % (number, len(line)))
    for start, block in code_blocks(lines):
        check_block(start, block, problems)
    for p in problems:
        print("%s: %s" % (SPEC.name, p))
    if problems:
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
