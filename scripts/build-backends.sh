# Sourced by the side-by-side benchmarks: `source scripts/build-backends.sh VENV` builds repic in release twice,
# on Flex (target/release/repic) and on LibTorch (target/tch/release/repic, linked to VENV's torch; see
# scripts/tch-env.sh), makes a temporary folder `$work` (removed on exit) and sets `$torch_lib`, the
# LD_LIBRARY_PATH the LibTorch binary needs. The caller's environment is left as it was.
cargo build --release -p repic
(
  source scripts/tch-env.sh "$1"
  CARGO_TARGET_DIR=target/tch cargo build --release -p repic --no-default-features --features tch
)
torch_lib="$(source scripts/tch-env.sh "$1" && echo "$TORCH_LIB")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
