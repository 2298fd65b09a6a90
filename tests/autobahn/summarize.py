#!/usr/bin/env python3
"""Summarize an Autobahn|Testsuite fuzzingclient report (index.json).

Usage:
    summarize.py [--expect N] [--allow BEHAVIOR ...] [--slowest K] PATH

PATH is the report's index.json (or the directory holding it). The report maps
agent -> case id -> {behavior, behaviorClose, duration, remoteCloseCode, reportfile}.

Prints, per agent: the counts of each `behavior` and `behaviorClose` value, the counts
per top-level case group, the slowest cases, and every case whose `behavior` or
`behaviorClose` is not one of OK, NON-STRICT, INFORMATIONAL (plus any --allow'ed value).

Exit status:
    0  every case passed and the report holds at least --expect cases per agent
    1  some case failed, or fewer cases than expected (or no agent at all)
    2  the report could not be read

The last line is "autobahn: N passed, N failed" (cases, summed over agents; cases
missing from the report count as failed).
Runs on the Python 3 standard library only.
"""

import argparse
import collections
import json
import os
import sys

# Behaviors the testsuite counts as a pass. NON-STRICT: the server did something
# allowed but not the strictest choice (e.g. failing fast on invalid UTF-8 later than
# possible). INFORMATIONAL: the case only records what happened (e.g. close codes).
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def case_key(case_id):
    """Sort "9.10.2" after "9.2.1": compare case ids as tuples of integers."""
    try:
        return tuple(int(p) for p in case_id.split("."))
    except ValueError:
        return (float("inf"), case_id)


def load(path):
    if os.path.isdir(path):
        path = os.path.join(path, "index.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise TypeError("top level is not a JSON object")
    return path, data


def fmt_counts(counter):
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def summarize_agent(agent, cases, passing, expect, slowest):
    """Print one agent's summary; return (passed, failed, problems) for the agent."""
    problems = []
    behavior = collections.Counter()
    behavior_close = collections.Counter()
    # top-level group ("9") -> {"pass": n, "fail": n}
    groups = collections.defaultdict(collections.Counter)
    failed = []
    total_ms = 0

    for case_id in sorted(cases, key=case_key):
        r = cases[case_id] or {}
        b = r.get("behavior", "MISSING")
        bc = r.get("behaviorClose", "MISSING")
        behavior[b] += 1
        behavior_close[bc] += 1
        total_ms += r.get("duration") or 0
        ok = b in passing and bc in passing
        groups[case_id.split(".")[0]]["pass" if ok else "fail"] += 1
        if not ok:
            failed.append((case_id, b, bc, r.get("remoteCloseCode"), r.get("reportfile")))

    n = len(cases)
    print(
        f"== agent {agent}: {n} cases, {n - len(failed)} passed, {len(failed)} failed "
        f"(sum of case durations {total_ms / 1000:.1f} s)"
    )
    print(f"   behavior:      {fmt_counts(behavior)}")
    print(f"   behaviorClose: {fmt_counts(behavior_close)}")
    print(
        "   by group:      "
        + "  ".join(
            f"{g}:{c['pass']}/{c['pass'] + c['fail']}"
            for g, c in sorted(groups.items(), key=lambda kv: case_key(kv[0]))
        )
    )

    if slowest > 0:
        top = sorted(cases.items(), key=lambda kv: -((kv[1] or {}).get("duration") or 0))[:slowest]
        print(
            "   slowest:       "
            + ", ".join(f"{cid} {(r or {}).get('duration', 0)} ms" for cid, r in top)
        )

    if failed:
        print(f"   FAILED cases ({len(failed)}):")
        print(f"     {'case':<10} {'behavior':<15} {'behaviorClose':<15} {'closeCode':<9} report")
        for case_id, b, bc, code, report in failed:
            print(f"     {case_id:<10} {b:<15} {bc:<15} {code!s:<9} {report or ''}")
        problems.append(f"agent {agent}: {len(failed)} case(s) failed")

    missing = 0
    if expect is not None and n < expect:
        missing = expect - n
        problems.append(f"agent {agent}: only {n} cases in the report, expected at least {expect}")

    # Cases that never ran count as failed in the closing line.
    return n - len(failed), len(failed) + missing, problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", help="index.json of a fuzzingclient report, or its directory")
    ap.add_argument(
        "--expect",
        type=int,
        default=None,
        help="minimum number of cases each agent must have (517 for all cases)",
    )
    ap.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="BEHAVIOR",
        help="also count this behavior as passing (e.g. UNIMPLEMENTED); repeatable",
    )
    ap.add_argument("--slowest", type=int, default=5, help="list the K slowest cases (0: none)")
    args = ap.parse_args(argv)

    try:
        path, data = load(args.path)
    except (OSError, ValueError, TypeError) as e:
        print(f"summarize: cannot read report {args.path}: {e}", file=sys.stderr)
        return 2

    passing = PASSING | {a.strip().upper() for a in args.allow if a.strip()}
    print(f"Autobahn report {path}")
    if passing != PASSING:
        print(f"   (also accepting: {', '.join(sorted(passing - PASSING))})")

    problems = []
    passed = failed = 0
    if not data:
        problems.append("the report holds no agent at all (did wstest reach the server?)")
        failed += args.expect or 0
    for agent in sorted(data):
        p, f, probs = summarize_agent(agent, data[agent] or {}, passing, args.expect, args.slowest)
        passed += p
        failed += f
        problems.extend(probs)

    if problems:
        print("RESULT: FAIL")
        for p in problems:
            print(f"  - {p}")
    else:
        print("RESULT: PASS")
    # The plain closing line CI tooling recognizes.
    print(f"autobahn: {passed} passed, {failed} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
