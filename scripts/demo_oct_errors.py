#!/usr/bin/env python3
"""Where a demo model's OCT answers go wrong: reading the query image, recalling the concept, or comparing.

Developer tool for docs/demo-notes.md, never run by CI (standard library only). Score a model first:

    repic eval --model DEMO/sft/checkpoint-N/model [--adapter DEMO/grpo/checkpoint-M/adapter] \\
        --records DEMO/data/eval/records.jsonl --image-root DEMO/data --limit 96 --out answers.jsonl
    python3 scripts/demo_oct_errors.py answers.jsonl DEMO/data/eval/records.jsonl

Both files hold the same records in the same order. Each OCT answer of the demo's worked form ("The image shows
a <look>. <k> is the <look>. The colours X and Y match/differ, so the answer is yes/no.") is sorted by:
`read` (what it says the image shows: `ok`, `reference` = the target concept's look on a record whose image
shows another object, `wrong`), `recall` (the concept's look), `compare` (whether match/differ agrees with the
two colours it wrote; `dropped` when the second colour is missing) and whether the verdict earned the reward.
"""

import argparse
import collections
import json
import re

ANSWER = re.compile(
    r"The image shows an? (.*?)\. <(\w+)> is the (.*?)\. "
    r"The colours (\w+)(?: and (\w+))? (match|differ), so the answer is (yes|no)"
)


def classify(answer: str, truth: str) -> tuple:
    """The (read, recall, compare) labels of one answer against the record's worked answer."""
    got, want = ANSWER.match(answer), ANSWER.match(truth)
    if want is None:
        raise ValueError(f"worked answer not of the one-object form (made with --oct-single-object?): {truth!r}")
    if got is None:
        return ("unparsed",)
    shown, _, look, first, second, verdict, _ = got.groups()
    true_shown, true_look = want.group(1), want.group(3)
    if shown == true_shown:
        read = "ok"
    elif shown == true_look:
        read = "reference"
    else:
        read = "wrong"
    recall = "ok" if look == true_look else "wrong"
    if second is None:
        compare = "dropped"
    else:
        compare = "ok" if (first == second) == (verdict == "match") else "wrong"
    return (read, recall, compare)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("answers", help="JSONL written by `repic eval --out`")
    p.add_argument("records", help="the records file that was evaluated")
    a = p.parse_args()
    with open(a.answers) as f:
        answers = [json.loads(line) for line in f]
    with open(a.records) as f:
        records = [json.loads(line) for line in f][: len(answers)]
    counts = collections.Counter()
    for ans, rec in zip(answers, records):
        if rec["accu_reward_method"] != "yes_no":
            continue
        try:
            label = classify(ans["completion"], rec["answer"])
        except ValueError as e:
            raise SystemExit(f"{a.records}: record {ans['index']}: {e}")
        counts[label + ("right" if ans["reward"] == 1.0 else "wrong", rec["solution"])] += 1
    total = sum(counts.values())
    print(f"{total} OCT answers; columns: read, recall, compare, verdict, solution")
    for label, n in counts.most_common():
        print(f"{n:5d}  {' '.join(label)}")
    for i, name in enumerate(["read", "recall", "compare"]):
        ok = sum(n for label, n in counts.items() if len(label) > 3 and label[i] == "ok")
        print(f"{name} ok: {ok}/{total}")


if __name__ == "__main__":
    main()
