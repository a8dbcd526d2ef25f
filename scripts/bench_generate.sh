#!/usr/bin/env bash
# Side-by-side generation throughput: `repic bench generate` vs transformers `generate` on the same checkpoint,
# image and settings, run one after the other on this machine. Prints a markdown table for docs/benchmarks.md.
#   scripts/bench_generate.sh PYTHON [CHECKPOINT...]
# PYTHON is an interpreter with torch + transformers (e.g. .venv/bin/python); checkpoints default to the
# tiny fixtures. Needs `cargo build --release -p repic` first.
set -euo pipefail
py=${1:?usage: scripts/bench_generate.sh PYTHON [CHECKPOINT...]}
shift
ckpts=("$@")
[ ${#ckpts[@]} -gt 0 ] || ckpts=(models/tests/fixtures/qwen2_5_vl_b models/tests/fixtures/qwen2_vl)
repic=target/release/repic
tps() { sed -n 's/.*"tokens_per_second": *\([0-9.]*\).*/\1/p' | tail -1; }
echo "| checkpoint | run | repic tok/s | transformers tok/s | ratio |"
echo "|---|---|---|---|---|"
for ck in "${ckpts[@]}"; do
  img=$(ls "$ck"/*.png | head -1)
  for run in "--batch 1" "--group 8"; do
    common=(--model "$ck" --image "$img" --new-tokens 64 --repeats 5 --json $run)
    ours=$("$repic" bench generate "${common[@]}" | tps)
    theirs=$("$py" scripts/bench_transformers_generate.py "${common[@]}" 2>/dev/null | tps)
    ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.1fx", a / b }')
    printf '| %s | %s | %.0f | %.0f | %s |\n' "$(basename "$ck")" "$run" "$ours" "$theirs" "$ratio"
  done
done
