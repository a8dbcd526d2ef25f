# Sourced by the LibTorch scripts: `source scripts/tch-env.sh VENV` makes VENV (a virtual environment with torch
# 2.9.0 from PyPI, 6-7 GB with its CUDA libraries, created and filled on first use) and exports what burn-tch's
# build and run need:
# LIBTORCH_USE_PYTORCH=1, the venv's python first on PATH (torch-sys asks it where torch lives), torch's lib/ on
# LD_LIBRARY_PATH, TORCH_LIB, and OMP_NUM_THREADS=1 unless set (LibTorch's default CPU threading is ~8x slower
# than one thread on small models, measured on 2 cores).
tch_venv="$1"
if [ ! -x "$tch_venv/bin/python" ]; then
  python3 -m venv "$tch_venv"
fi
if ! "$tch_venv/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.9.0")' 2>/dev/null; then
  "$tch_venv/bin/pip" install --progress-bar off torch==2.9.0
fi
TORCH_LIB="$("$tch_venv/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export TORCH_LIB
export LIBTORCH_USE_PYTORCH=1
PATH="$(cd "$tch_venv/bin" && pwd):$PATH"
export PATH
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
