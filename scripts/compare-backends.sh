#!/usr/bin/env bash
# GRPO steps of the demo config on Flex (pure Rust) and on LibTorch, side by side on this machine: the same SFT
# model and data (`repic demo --quick`, seed 0, made with the Flex build), then STEPS steps of `repic train
# --config configs/demo.toml` with each backend. Prints mean seconds per step and per phase over steps 3..STEPS.
# Usage: scripts/compare-backends.sh [VENV] [STEPS]   (VENV as for scripts/test-tch.sh; STEPS default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-tch}"
steps="${2:-20}"
source scripts/build-backends.sh "$venv"
target/release/repic demo --quick --out "$work/demo" >/dev/null 2>&1
sft="$(ls -d "$work"/demo/sft/checkpoint-*/model | tail -1)"
run() {  # NAME BINARY [ENV...]
  local name="$1" bin="$2"
  shift 2
  env "$@" "$bin" train --config configs/demo.toml --set "model=\"$sft\"" --set "output_dir=\"$work/$name\"" \
    --set "data.train=\"$work/demo/data/train/records.jsonl\"" --set "data.image_root=\"$work/demo/data\"" \
    --set "train.max_steps=$steps" >/dev/null 2>&1
}
run flex target/release/repic
run tch-1thread target/tch/release/repic LD_LIBRARY_PATH="$torch_lib" OMP_NUM_THREADS=1
run tch-omp target/tch/release/repic -u OMP_NUM_THREADS LD_LIBRARY_PATH="$torch_lib"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
keys = ["timing/generate", "timing/logprobs", "timing/update"]
print(f"{'backend':<14}{'step s':>9}{'generate':>10}{'ref+old lp':>11}{'update':>9}{'tokens':>8}")
for name in ["flex", "tch-1thread", "tch-omp"]:
    rows = [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl")][2:]
    mean = lambda k: sum(r[k] for r in rows) / len(rows)
    total = sum(mean(k) for k in keys)
    print(f"{name:<14}{total:>9.3f}{mean(keys[0]):>10.3f}{mean(keys[1]):>11.3f}{mean(keys[2]):>9.3f}"
          f"{mean('completions/mean_length'):>8.1f}")
PY
