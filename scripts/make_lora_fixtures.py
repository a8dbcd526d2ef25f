#!/usr/bin/env python3
"""PEFT LoRA adapters on the tiny parity checkpoints, with the logits they give, for repic's LoRA tests.

Run by a developer, never by CI, after make_parity_fixtures.py (same venv plus peft):

    .venv/bin/pip install peft==0.17.1
    .venv/bin/python scripts/make_lora_fixtures.py --fixtures models/tests/fixtures

For `qwen2_vl` (tied output head) and `qwen2_5_vl` (untied) it attaches a LoRA adapter (r = 4, alpha = 8,
dropout 0.05) to every Linear of the language model and the head, with random A *and* B (so the adapter
changes the output), saves it with `save_pretrained` into `<model>/lora/`, and records the full logits of the
`image_text` case with the adapter on (`lora/reference.safetensors`, key `logits`, `[T, vocab]`).

With `--check DIR --model NAME` it instead loads an adapter folder written by repic onto the named fixture and
prints the largest difference between its logits and the ones in `DIR/logits.safetensors` (written by the
`REPIC_KEEP_ADAPTER` run of repic's LoRA test). With `--check-merged DIR --model NAME` it loads a folder that
`repic export --model <fixture>/lora --out DIR` merged, with transformers alone, and compares its logits with
the adapter's recorded ones.
"""

import argparse
import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration

TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)|lm_head"


def load(path: Path):
    cls = {"qwen2_vl": Qwen2VLForConditionalGeneration, "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration}
    model_type = json.loads((path / "config.json").read_text())["model_type"]
    return cls[model_type].from_pretrained(path, torch_dtype=torch.float32).eval()


def case_logits(model, fixture: Path) -> torch.Tensor:
    ref = load_file(str(fixture / "reference.safetensors"))
    kwargs = {"input_ids": ref["image_text.input_ids"].reshape(1, -1)}
    if "image_text.pixel_values" in ref:
        kwargs["pixel_values"] = ref["image_text.pixel_values"]
        kwargs["image_grid_thw"] = ref["image_text.image_grid_thw"]
        if int(__import__("transformers").__version__.split(".")[0]) >= 5:  # M-RoPE needs the modality of each token
            kwargs["mm_token_type_ids"] = (kwargs["input_ids"] == model.config.image_token_id).int()
    with torch.no_grad():
        return model(**kwargs).logits[0].float().contiguous()


def make(fixture: Path, seed: int):
    torch.manual_seed(seed)
    base = load(fixture)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=TARGETS, init_lora_weights=False)
    model = get_peft_model(base, cfg).eval()
    out = fixture / "lora"
    model.save_pretrained(str(out))
    save_file({"logits": case_logits(model, fixture)}, str(out / "reference.safetensors"))
    print(f"{out}: {sorted(p.name for p in out.iterdir())}")


def check(fixture: Path, adapter: Path):
    model = PeftModel.from_pretrained(load(fixture), str(adapter)).eval()
    got = case_logits(model, fixture)
    want = load_file(str(adapter / "logits.safetensors"))["logits"]
    print(f"max |logits(PEFT) - logits(repic)| = {(got - want).abs().max().item():.3e}")


def check_merged(fixture: Path, merged: Path):
    """transformers alone (no PEFT) loads a folder `repic export` merged the fixture's adapter into, and gives the
    logits PEFT gave with the adapter on."""
    got = case_logits(load(merged), fixture)
    want = load_file(str(fixture / "lora" / "reference.safetensors"))["logits"]
    scale = want.abs().max().item()
    print(f"max |logits(merged) - logits(PEFT)| = {(got - want).abs().max().item():.3e} (largest logit {scale:.2f})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", type=Path, default=Path("models/tests/fixtures"))
    ap.add_argument("--check", type=Path)
    ap.add_argument("--check-merged", type=Path)
    ap.add_argument("--model", default="qwen2_vl")
    a = ap.parse_args()
    if a.check:
        check(a.fixtures / a.model, a.check)
        return
    if a.check_merged:
        check_merged(a.fixtures / a.model, a.check_merged)
        return
    for i, name in enumerate(["qwen2_vl", "qwen2_5_vl"]):
        make(a.fixtures / name, 1000 + i)


if __name__ == "__main__":
    main()
