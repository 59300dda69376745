#!/usr/bin/python3
"""Checks the example sessions of proto-spec/cloudproto-v1.md.

A wrong octet count makes the norm wrong, so every count in the examples
is checked here rather than trusted:

- each `C+ n text` / `S+ n text` line stands for exactly n octets;
- the octets after `C: SUBMIT <id> <d> <s>` add up to d + s, and the
  descriptor ends on a line boundary of the example;
- the octets after `S: 250 PAYLOAD <a> <b>` add up to a + b, and the
  STDOUT-BYTES / STDERR-BYTES of that reply say a and b;
- a `552` reply names the sum of the counts of the SUBMIT before it;
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


def check_block(start, block, problems):
    submit = None  # [line, d, s, octets so far, boundaries]
    payload = None  # [line, a, b, octets so far, boundaries]
    report = {}
    last_counts = None

    def close_submit():
        nonlocal submit
        if submit:
            line, d, s, got, bounds = submit
            if got != d + s:
                problems.append("line %d: SUBMIT announces %d + %d = %d octets,"
                                " the example sends %d" % (line, d, s, d + s, got))
            elif d not in bounds:
                problems.append("line %d: the descriptor (%d octets) does not end"
                                " on a line of the example" % (line, d))
        submit = None

    def close_payload():
        nonlocal payload
        if payload:
            line, a, b, got, bounds = payload
            if got != a + b:
                problems.append("line %d: PAYLOAD announces %d + %d = %d octets,"
                                " the example shows %d" % (line, a, b, a + b, got))
            elif a not in bounds:
                problems.append("line %d: standard output (%d octets) does not"
                                " end on a line of the example" % (line, a))
        payload = None

    for offset, line in enumerate(block):
        number = start + offset
        m = re.match(r"([CS])\+ (\d+) (.*)\Z", line)
        if m:
            data = unescape(m.group(3))
            if len(data) != int(m.group(2)):
                problems.append("line %d: %s+ says %s octets, its text is %d"
                                % (number, m.group(1), m.group(2), len(data)))
            target = submit if m.group(1) == "C" else payload
            if target:
                target[3] += len(data)
                target[4].add(target[3])
            continue

        if line.startswith("C: ") or line.startswith("S: "):
            if len(line) - 3 + 2 > MAX_LINE_BYTES:
                problems.append("line %d: protocol line too long" % number)
        if line.startswith("C:"):
            close_submit()
            close_payload()
            m = re.match(r"C: SUBMIT \S+ (\d+) (\d+)", line)
            if m:
                d, s = int(m.group(1)), int(m.group(2))
                last_counts = d + s
                submit = [number, d, s, 0, {0}]
        elif line.startswith("S:"):
            if submit and line.startswith("S: 552"):
                submit = None  # no payload follows a 552
            close_submit()
            close_payload()
            m = re.match(r"S: 250[- ]((STDOUT|STDERR)-BYTES) (\d+)\Z", line)
            if m:
                report[m.group(1)] = int(m.group(3))
            m = re.match(r"S: 250 PAYLOAD (\d+) (\d+)\Z", line)
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                payload = [number, a, b, 0, {0}]
                if report and (report.get("STDOUT-BYTES"),
                               report.get("STDERR-BYTES")) != (a, b):
                    problems.append("line %d: PAYLOAD %d %d but the report says"
                                    " %s" % (number, a, b, report))
                report = {}
            m = re.match(r"S: 552 job of (\d+) octets", line)
            if m and int(m.group(1)) != last_counts:
                problems.append("line %d: 552 names %s octets, the SUBMIT asked"
                                " for %s" % (number, m.group(1), last_counts))
    close_submit()
    close_payload()


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
