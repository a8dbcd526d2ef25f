#!/usr/bin/env python3
"""Check that transformers loads a folder written by `repic export` and gives the fixture's reference outputs.

    repic export --model models/tests/fixtures/qwen2_5_vl --out /tmp/exported
    .venv/bin/python scripts/check_exported_checkpoint.py /tmp/exported models/tests/fixtures/qwen2_5_vl
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor
from PIL import Image


def main(exported: Path, fixture: Path) -> int:
    model = AutoModelForImageTextToText.from_pretrained(exported, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(fixture, use_fast=False)
    ref = load_file(str(fixture / "reference.safetensors"))
    meta = json.loads((fixture / "reference.json").read_text())
    worst = 0.0
    for case, e in meta["cases"].items():
        imgs = [Image.open(fixture / f) for f in e["images"]]
        inputs = processor(text=[e["prompt"]], images=imgs or None, return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1]
        diff = (logits - ref[f"{case}.logits_last"]).abs().max().item()
        worst = max(worst, diff)
        print(f"{case}: max |logit diff| = {diff:.2e}")
    print("OK" if worst <= 1e-4 else "MISMATCH")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
