#!/usr/bin/env bash
# Run the whole workspace's test suite on the LibTorch backend (burn-tch 0.21 -> tch 0.22 -> PyTorch 2.9.0 from
# PyPI), then `repic demo --quick` built the same way.
# Usage: scripts/test-tch.sh [VENV] [cargo test args...]
#   VENV: a virtual environment with torch 2.9.0 (default .venv-tch; created and filled on first use, 6-7 GB).
#   Builds into target/tch (its own folder: the LibTorch feature set would otherwise rebuild burn in target/).
#   REPIC_TCH_SKIP_DEMO=1 skips the demo run.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-tch}"
source scripts/tch-env.sh "$venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/tch}"
# Every backend-dependent crate with LibTorch instead of Flex; the backend-free crates run as they are.
pkgs=(-p repic-models -p repic-trainer -p repic-eval -p repic-personalize -p repic-server -p repic)
cargo test "${pkgs[@]}" --no-default-features --features tch "${@:2}"
if [ "${REPIC_TCH_SKIP_DEMO:-0}" != 1 ] && [ $# -le 1 ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
  cargo run --release -p repic --no-default-features --features tch -- demo --quick --out "$out/demo"
fi
