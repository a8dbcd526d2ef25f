#!/usr/bin/env bash
# One GRPO step, repic vs TRL, side by side on this machine (issue 19's setting, configs/bench-grpo.toml): the
# tiny random Qwen2-VL fixture (3 layers, width 48), full fine-tuning, G = 8, 2 prompts per step, exactly 64 new
# tokens, beta 0.04, float32, OCT records of `repic synth` (a reference and a scene image each). repic runs on Flex
# and on LibTorch (`--features tch`, default threads and one thread); TRL's GRPOTrainer with transformers on the
# same checkpoint, records and images. Prints mean seconds per step over steps 3..STEPS and the ratios.
# Usage: scripts/bench_grpo_vs_trl.sh VENV [STEPS]   (VENV: torch 2.9.0, transformers 5.x, trl 1.16; its torch is
#        also what the LibTorch build links)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$1"
steps="${2:-12}"
source scripts/build-backends.sh "$venv"
# Mixed task records (images of two sizes in one batch) make transformers 5.25's get_rope_index fail inside TRL
# 1.16 ("shape mismatch"); OCT records all have the same two image sizes.
target/release/repic synth --out "$work/data" --concepts 4 --records 64 --eval-records 2 --eval-queries 2 \
  --scene-size 112 --ref-size 56 --mix oct=1.0 >/dev/null 2>&1
repic_step() {  # NAME BINARY [ENV...]
  local name="$1" bin="$2"
  shift 2
  env "$@" "$bin" train --config configs/bench-grpo.toml --set "data.train=\"$work/data/train/records.jsonl\"" \
    --set "data.image_root=\"$work/data\"" --set "output_dir=\"$work/$name\"" --set "train.max_steps=$steps" \
    >/dev/null 2>&1
  python3 - "$work/$name/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][2:]
print(sum(sum(r[k] for r in rows) / len(rows) for k in ["timing/generate", "timing/logprobs", "timing/update"]))
PY
}
flex=$(repic_step flex target/release/repic)
tch=$(repic_step tch target/tch/release/repic -u OMP_NUM_THREADS LD_LIBRARY_PATH="$torch_lib")
tch1=$(repic_step tch1 target/tch/release/repic LD_LIBRARY_PATH="$torch_lib" OMP_NUM_THREADS=1)
trl=$("$venv/bin/python" scripts/bench_trl_grpo.py --model models/tests/fixtures/qwen2_vl_flat --data "$work/data" \
  --steps "$steps" --out "$work/trl" 2>/dev/null | tail -1)
python3 - "$flex" "$tch" "$tch1" "$trl" <<'PY'
import json, sys
flex, tch, tch1 = map(float, sys.argv[1:4])
trl = json.loads(sys.argv[4])
t = trl["step_s"]
print(f"{'run':<34}{'s / step':>10}{'TRL / it':>10}")
for name, s in [("repic, Flex", flex), ("repic, LibTorch (default threads)", tch),
                ("repic, LibTorch (1 thread)", tch1), (f"TRL (torch {trl['torch']}, {trl['threads']} threads)", t)]:
    print(f"{name:<34}{s:>10.3f}{t / s:>9.2f}x")
PY
