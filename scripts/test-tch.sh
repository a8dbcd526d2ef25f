#!/usr/bin/env bash
# Run the model test suite on the LibTorch backend (burn-tch 0.21 -> tch 0.22 -> PyTorch 2.9.0 from PyPI).
# Usage: scripts/test-tch.sh [VENV]   (default VENV: .venv-tch; created and filled on first use, ~4 GB)
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
cargo test -p repic-models --no-default-features --features tch "${@:2}"
