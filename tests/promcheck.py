#!/usr/bin/env python3
"""promcheck.py FILE [FAMILY...] - checks that FILE is valid Prometheus
text exposition format (version 0.0.4) and holds each FAMILY.

Checked: every line is a comment, a HELP/TYPE line or a sample; a
family has one TYPE, given before its samples, and its samples are
together; names and label names are legal, label values correctly
escaped, values parse as floats; counters end in _total; a histogram's
buckets per label set have increasing le, non-decreasing counts, end in
le="+Inf" equal to _count, and have a _sum.  Prints the first problem
and exits 1, or prints the number of samples and exits 0.
"""
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE = re.compile(r"^(%s)(\{(.*)\})? (\S+)( -?\d+)?$" % NAME)
LABEL_PAIR = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)' % LABEL)
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def fail(lineno, msg):
    print("line %d: %s" % (lineno, msg))
    sys.exit(1)


def parse_labels(text, lineno):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL_PAIR.match(text, pos)
        if not m:
            fail(lineno, "bad label set {%s}" % text)
        if m.group(1) in labels:
            fail(lineno, "label %s twice" % m.group(1))
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return name


def check_histograms(hists, lineno):
    for (fam, key), h in hists.items():
        les = [le for le, _ in h["buckets"]]
        if not les or les[-1] != math.inf:
            fail(lineno, "%s%s: no le=\"+Inf\" bucket" % (fam, key))
        if les != sorted(les) or len(set(les)) != len(les):
            fail(lineno, "%s%s: le not increasing" % (fam, key))
        counts = [c for _, c in h["buckets"]]
        if any(b < a for a, b in zip(counts, counts[1:])):
            fail(lineno, "%s%s: bucket counts decrease" % (fam, key))
        if h.get("count") != counts[-1]:
            fail(lineno, "%s%s: _count differs from +Inf bucket" %
                 (fam, key))
        if "sum" not in h:
            fail(lineno, "%s%s: no _sum" % (fam, key))


def main():
    path, wanted = sys.argv[1], sys.argv[2:]
    types, helps, seen, done = {}, set(), set(), set()
    hists, current, n = {}, None, 0
    text = open(path, encoding="utf-8").read()
    if text and not text.endswith("\n"):
        fail(text.count("\n") + 1, "no final newline")
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not re.fullmatch(NAME, parts[2]):
                fail(lineno, "bad %s line" % parts[1])
            fam = parts[2]
            if parts[1] == "TYPE":
                if fam in types or fam in seen:
                    fail(lineno, "TYPE of %s twice or after samples" % fam)
                if parts[3] not in TYPES:
                    fail(lineno, "unknown type %s" % parts[3])
                types[fam] = parts[3]
            elif fam in helps:
                fail(lineno, "HELP of %s twice" % fam)
            else:
                helps.add(fam)
            continue
        if line.startswith("#") or not line.strip():
            continue
        m = SAMPLE.match(line)
        if not m:
            fail(lineno, "not a sample: %r" % line)
        name, labels = m.group(1), parse_labels(m.group(3) or "", lineno)
        try:
            value = float(m.group(4))
        except ValueError:
            fail(lineno, "bad value %r" % m.group(4))
        fam = family_of(name, types)
        if fam != current:
            if fam in done:
                fail(lineno, "samples of %s are not together" % fam)
            if current:
                done.add(current)
            current = fam
        seen.add(fam)
        kind = types.get(fam, "untyped")
        if kind == "counter" and not fam.endswith("_total"):
            fail(lineno, "counter %s does not end in _total" % fam)
        if kind == "counter" and value < 0:
            fail(lineno, "negative counter %s" % fam)
        if kind == "histogram":
            le = labels.pop("le", None)
            h = hists.setdefault((fam, tuple(sorted(labels.items()))),
                                 {"buckets": []})
            if name.endswith("_bucket"):
                if le is None:
                    fail(lineno, "bucket without le")
                h["buckets"].append((float(le), value))
            elif name.endswith("_sum"):
                h["sum"] = value
            else:
                h["count"] = value
        n += 1
    check_histograms(hists, lineno)
    for fam in wanted:
        if fam not in seen:
            fail(lineno, "no samples of %s" % fam)
    print("%d samples, %d families" % (n, len(seen)))


if __name__ == "__main__":
    main()
