#!/usr/bin/env bash
# Build everything the GPU check needs here (no GPU needed: CUDA is loaded at run time) and pack it into
# .gpu/ (ignored by git) for the device machine: the CUDA test binaries of repic-models and repic-trainer and
# a release `repic` with --features cuda, stripped and xz-compressed. Then run scripts/gpu_check.sh there.
#   scripts/gpu_bundle.sh            (CARGO_TARGET_DIR defaults to target/cuda, apart from the CPU build)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cuda}
rm -rf .gpu && mkdir -p .gpu/tests
tests=$(cargo test --no-run -p repic-models -p repic-trainer --features repic-models/cuda --message-format=json |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
for t in $tests; do
  name=$(basename "$t")
  strip -o ".gpu/tests/$name" "$t"
done
cargo build --release -p repic --features cuda
strip -o .gpu/repic "$CARGO_TARGET_DIR/release/repic"
# The test binaries look for fixtures under the absolute path they were built in.
pwd > .gpu/source_dir
(cd .gpu && tar cf - tests repic | xz -T1 --lzma2=preset=6,dict=1GiB > bundle.tar.xz && rm -rf tests repic)
ls -la .gpu
