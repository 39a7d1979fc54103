#!/usr/bin/env python3
"""Independent check of a solver result against APKINDEX text (test-apk-solver runs it).

usage: apk-closure-check.py APKINDEX RESULT WORLD...
       apk-closure-check.py APKINDEX --each DIR
RESULT holds one "name version" per line in install order; with --each, every file in DIR
is a RESULT whose world is the file's name. Prints one line per problem
and "checked N packages" last; exits 1 when there is a problem. Version constraints are
compared by their numeric parts, which is exact for the operators the Alpine data uses
(= and >= on plain dotted versions with -rN)."""
import re
import sys


def parse(path):
    pkgs, cur = [], {}
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            if cur:
                pkgs.append(cur)
            cur = {}
            continue
        k, v = line[0], line[2:]
        if k in "Dpi":
            cur.setdefault(k, []).extend(v.split())
        else:
            cur[k] = v
    if cur:
        pkgs.append(cur)
    return pkgs


def split_dep(d):
    m = re.match(r"^(!?)([^<>=~]+)([<>=~]*)(.*)$", d)
    return m.group(1) == "!", m.group(2), m.group(3), m.group(4) or None


def key(v):
    return [int(x) for x in re.findall(r"\d+", v)]


def ver_ok(have, op, want):
    if not op:
        return True
    if have is None:
        return False
    a, b = key(have), key(want)
    return {"=": a == b, ">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}.get(op, False)


def provides(p):
    yield p["P"], p["V"]
    for e in p.get("p", []):
        _, n, _, v = split_dep(e)
        yield n, v


def satisfied_by(dep, chosen):
    neg, name, op, ver = split_dep(dep)
    hits = [p for p in chosen for n, v in provides(p) if n == name and ver_ok(v, op, ver)]
    return neg, hits


def main():
    pkgs = parse(sys.argv[1])
    if sys.argv[2] == "--each":
        import os
        d = sys.argv[3]
        bad = 0
        names = sorted(os.listdir(d))
        for f in names:
            problems, n = check(pkgs, os.path.join(d, f), [f])
            for pr in problems:
                print(f"{f}: {pr}")
            bad += bool(problems)
        print(f"checked {len(names)} worlds")
        sys.exit(1 if bad or not names else 0)
    problems, n = check(pkgs, sys.argv[2], sys.argv[3:])
    for pr in problems:
        print(pr)
    print(f"checked {n} packages")
    sys.exit(1 if problems else 0)


def check(pkgs, result, world):
    by_nv = {(p["P"], p["V"]): p for p in pkgs}
    order = [tuple(l.split()) for l in open(result, encoding="utf-8") if l.strip()]
    chosen = [by_nv[nv] for nv in order]
    problems = []
    pos = {p["P"]: i for i, p in enumerate(chosen)}
    if len(pos) != len(chosen):
        problems.append("a name is chosen twice")
    needed = set()
    for w in world:
        neg, hits = satisfied_by(w, chosen)
        if not neg and not hits:
            problems.append(f"world {w} not satisfied")
        needed.update(h["P"] for h in hits)
    edges = {}
    for p in chosen:
        for d in p.get("D", []):
            neg, hits = satisfied_by(d, chosen)
            if neg:
                hits = [h for h in hits if h is not p]
                if hits:
                    problems.append(f"{p['P']} conflicts with {d}, chosen {hits[0]['P']}")
                continue
            if not hits:
                problems.append(f"{p['P']}: dependency {d} not satisfied")
            needed.update(h["P"] for h in hits)
            edges.setdefault(p["P"], set()).update(h["P"] for h in hits)
    # install-if: every package whose i: the chosen set meets must be chosen, and counts
    # as needed.
    for p in pkgs:
        if "i" in p and all(satisfied_by(d, chosen)[1] for d in p["i"]):
            if p["P"] not in pos:
                problems.append(f"install-if {p['P']} triggered but not chosen")
            needed.add(p["P"])
            edges.setdefault(p["P"], set()).update(
                h["P"] for d in p["i"] for h in satisfied_by(d, chosen)[1])
    for p in chosen:
        if p["P"] not in needed:
            problems.append(f"{p['P']} chosen but nothing needs it")

    def reaches(a, b, seen):
        if a == b:
            return True
        seen.add(a)
        return any(reaches(n, b, seen) for n in edges.get(a, ()) if n not in seen)

    for a, deps in edges.items():
        for b in deps:
            if a in pos and b in pos and pos[b] > pos[a] and not reaches(b, a, set()):
                problems.append(f"{a} is installed before its dependency {b}")
    return problems, len(chosen)


main()
