#!/usr/bin/env bash
# Run the whole workspace's test suite on the LibTorch backend (burn-tch 0.21 -> tch 0.22 -> PyTorch 2.9.0 from
# PyPI), then `repic demo --quick` built the same way.
# Usage: scripts/test-tch.sh [VENV] [cargo test args...]
#   VENV: a virtual environment with torch 2.9.0 (default .venv-tch; created and filled on first use, ~4 GB).
#   Builds into target/tch (its own folder: the LibTorch feature set would otherwise rebuild burn in target/).
#   REPIC_TCH_SKIP_DEMO=1 skips the demo run.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-tch}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.9.0")' 2>/dev/null; then
  "$venv/bin/pip" install --progress-bar off torch==2.9.0
fi
torch_lib="$("$venv/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LIBTORCH_USE_PYTORCH=1
export PATH="$(cd "$venv/bin" && pwd):$PATH"   # torch-sys asks `python` where torch lives
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# LibTorch's default CPU threading is ~8x slower than one thread on small models.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/tch}"
# Every backend-dependent crate with LibTorch instead of Flex; the backend-free crates run as they are.
pkgs=(-p repic-models -p repic-trainer -p repic-eval -p repic-personalize -p repic-server -p repic)
cargo test "${pkgs[@]}" --no-default-features --features tch "${@:2}"
if [ "${REPIC_TCH_SKIP_DEMO:-0}" != 1 ] && [ $# -le 1 ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
  cargo run --release -p repic --no-default-features --features tch -- demo --quick --out "$out/demo"
fi
