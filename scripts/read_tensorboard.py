#!/usr/bin/env python3
"""Read a repic run's TensorBoard event files with TensorBoard's own reader and check them against
metrics.jsonl (developer check, never run by CI):

    .venv/bin/pip install tensorboard==2.21.0
    .venv/bin/python scripts/read_tensorboard.py RUN_DIR

Prints the scalar tags, the number of steps per tag, and the largest difference between the event values and
metrics.jsonl (float32 rounding expected); exits non-zero on any mismatch.
"""

import json
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    run = Path(sys.argv[1])
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    worst, compared = 0.0, 0
    for tag in tags:
        for ev in acc.Scalars(tag):
            row = next(m for m in metrics if m["step"] == ev.step)
            worst = max(worst, abs(row[tag] - ev.value) / max(1.0, abs(row[tag])))
            compared += 1
    print(f"{len(tags)} scalar tags, {compared} values over {len(metrics)} steps; e.g. {sorted(tags)[:5]}")
    print(f"largest relative difference to metrics.jsonl: {worst:.2e}")
    missing = {k for m in metrics for k in m if k != "step"} - set(tags)
    if missing or worst > 1e-6 or compared == 0:
        print(f"MISMATCH: missing tags {sorted(missing)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
