#!/usr/bin/env python3
"""Paired comparison of two models' answers to the same records: how many each fixes and breaks, with an exact
McNemar test (two-sided binomial on the discordant records).

Developer tool for docs/demo-notes.md, never run by CI (standard library only). Score both models first with the
same records, seed and options:

    repic eval --model DEMO/sft/checkpoint-N/model --records DEMO/data/eval/records.jsonl \\
        --image-root DEMO/data --limit 384 --out before.jsonl
    repic eval --model DEMO/grpo/checkpoint-M/model ... --out after.jsonl
    python3 scripts/paired_answers.py before.jsonl after.jsonl

A record counts as solved when `repic eval` judged its answer correct (the row's "correct", repic-eval's one rule of
a correct answer); records it could not judge (null) are left out.
"""

import argparse
import collections
import json
import math
import sys


def load(path: str) -> dict:
    """index -> (method, solved) of every answer in a `repic eval --out` file."""
    rows = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if row["correct"] is not None:
                    rows[row["index"]] = (row["method"], bool(row["correct"]))
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as e:
                sys.exit(f"{path}:{n}: not a `repic eval --out` answer ({e})")
    return rows


def mcnemar_p(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar p-value: P(a split at least this uneven | discordant records, p = 1/2)."""
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(fixed, broken) + 1)) / 2**n
    return min(1.0, 2 * tail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    a = ap.parse_args()
    before, after = load(a.before), load(a.after)
    if before.keys() != after.keys():
        sys.exit(f"{a.before} and {a.after} answer different records ({len(before)} vs {len(after)} indices)")
    counts = collections.defaultdict(collections.Counter)
    for i, (method, ok_before) in before.items():
        method_after, ok_after = after[i]
        if method != method_after:
            sys.exit(f"record {i} is {method} in {a.before} but {method_after} in {a.after}")
        counts[method][(ok_before, ok_after)] += 1
    print("method       records  before  after  fixed  broken  McNemar p")
    for method, c in sorted(counts.items()):
        n = sum(c.values())
        fixed, broken = c[(False, True)], c[(True, False)]
        before_ok = c[(True, True)] + broken
        after_ok = c[(True, True)] + fixed
        print(
            f"{method:12s} {n:7d} {100 * before_ok / n:7.1f} {100 * after_ok / n:6.1f} {fixed:6d} {broken:7d}"
            f"  {mcnemar_p(fixed, broken):9.2g}"
        )


if __name__ == "__main__":
    main()
