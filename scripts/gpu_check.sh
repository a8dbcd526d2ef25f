#!/usr/bin/env bash
# The GPU checks and timings, run on a CUDA machine from the bundle scripts/gpu_bundle.sh packed into .gpu/:
# the repic-models / repic-trainer test suites on the CUDA backend, `repic train` steps of the RePIC config,
# `repic demo --quick`, and generation throughput of repic vs transformers on a Qwen2-VL-2B-shaped random model
# (scripts/make_bench_model.py; python3 there must have torch + transformers). Logs and summary.txt go to OUT.
# Every step has a time cap and the whole script a deadline (default 540 s); a step that would pass the deadline
# is cut short or skipped, and says so.
#   scripts/gpu_check.sh OUT [SECONDS]
set -u
out=${1:?usage: scripts/gpu_check.sh OUT [SECONDS]}
budget=${2:-540}
cd "$(dirname "$0")/.."
mkdir -p "$out"
say() { echo "== $*" | tee -a "$out/summary.txt"; }
t0=$(date +%s)
elapsed() { echo $(($(date +%s) - t0)); }
# capped CAP CMD...: run CMD for at most CAP seconds, less near the deadline; not at all (rc 124) when under
# 15 s are left.
capped() {
  local c=$1 left=$((t0 + budget - $(date +%s)))
  shift
  [ "$left" -lt 15 ] && { echo "skipped: deadline" >&2; return 124; }
  [ "$left" -lt "$c" ] && c=$left
  timeout "$c" "$@"
}
# Test binaries read fixtures from the absolute path they were built in.
src=$(cat .gpu/source_dir)
if [ "$PWD" != "$src" ] && [ ! -e "$src" ]; then mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"; fi
(cd .gpu && xz -dc bundle.tar.xz | tar xf -) || { say "bundle missing: run scripts/gpu_bundle.sh"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$out/summary.txt"
# cudarc opens libcuda and libnvrtc at run time.
nvrtc=$(find /usr/local /opt /usr/lib -name 'libnvrtc.so*' 2>/dev/null | sort | head -1)
[ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "nvrtc: ${nvrtc:-not found}"
repic=$PWD/.gpu/repic

work=/tmp/repic-gpu && rm -rf "$work" && mkdir -p "$work"

# 1. Test suites on the CUDA backend (one binary at a time, 200 s for all of them).
tests_end=$((t0 + 200))
for t in .gpu/tests/*; do
  name=$(basename "$t")
  left=$((tests_end - $(date +%s)))
  if [ "$left" -lt 10 ]; then say "test $name: skipped (test time spent)"; continue; fi
  s=$(date +%s)
  timeout "$left" "$t" --test-threads=1 > "$work/test.log" 2>&1
  rc=$?
  say "test $name: rc=$rc in $(($(date +%s) - s)) s: $(grep -E '^test result' "$work/test.log" | tail -1)"
  # The failure messages (the device returns at most 8 files, so every test's log goes into one).
  grep -A2 'panicked' "$work/test.log" | head -30 | tee -a "$out/summary.txt"
  { echo "## $name"; cat "$work/test.log"; } >> "$out/tests.log"
done

# 2. A Qwen2-VL-2B-shaped model: generation throughput (repic vs transformers, float32) and GRPO steps of the
#    RePIC config (LoRA r64, G = 8) on it.
"$repic" synth --out "$work/data" --concepts 8 --records 64 --eval-records 2 --eval-queries 2 > /dev/null 2>&1
bench=$work/qwen2vl-2b-shape
s=$(date +%s)
capped 90 python3 scripts/make_bench_model.py --from models/tests/fixtures/qwen2_vl --out "$bench" \
  > "$out/bench-model.log" 2>&1
say "bench model: rc=$? in $(($(date +%s) - s)) s: $(tail -1 "$out/bench-model.log")"
img=models/tests/fixtures/qwen2_vl/image2.png
for run in "--batch 1" "--group 8"; do
  args=(--model "$bench" --image "$img" --new-tokens 64 --repeats 3 --json $run)
  ours=$(capped 60 "$repic" bench generate "${args[@]}" 2>> "$out/bench-repic.err" | tail -1)
  theirs=$(capped 50 python3 scripts/bench_transformers_generate.py "${args[@]}" --device cuda \
    2>> "$out/bench-tf.err" | tail -1)
  say "generate $run: repic $ours | transformers $theirs"
done
s=$(date +%s)
capped 120 "$repic" train --config configs/repic-qwen2.5vl-7b.toml --set "model=\"$bench\"" \
  --set "output_dir=\"$work/run\"" --set "data.train=\"$work/data/train/records.jsonl\"" \
  --set "data.image_root=\"$work/data\"" --set data.max_pixels=200704 --set train.max_steps=2 \
  --set grpo.max_completion_length=32 --set train.save_steps=0 --log warn > "$out/train-bench.log" 2>&1
say "repic train (RePIC config, 2B-shaped, 2 steps of 32-token completions): rc=$? in $(($(date +%s) - s)) s"
cat "$work/run/metrics.jsonl" >> "$out/summary.txt" 2> /dev/null
nvidia-smi --query-gpu=memory.used --format=csv,noheader | tee -a "$out/summary.txt"

# 3. The quick demo, if time is left.
s=$(date +%s)
capped 120 "$repic" demo --quick --out "$work/demo" > "$out/demo-quick.log" 2>&1
say "repic demo --quick: rc=$? in $(($(date +%s) - s)) s"
tail -14 "$out/demo-quick.log" >> "$out/summary.txt"
say "total $(elapsed) s"
