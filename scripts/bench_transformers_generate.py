#!/usr/bin/env python3
"""transformers `generate` throughput on the settings of `repic bench generate`, for side-by-side tables.

Developer tool, never run by CI (needs torch + transformers, see make_parity_fixtures.py):

    .venv/bin/python scripts/bench_transformers_generate.py --model DIR --image IMG --group 8 --new-tokens 64 --json

Times `model.generate` only (not loading or preprocessing): one warm-up, then the median of `--repeats` runs.
A batch (`--batch B`) is B copies of the prompt; a group (`--group G`) is `num_return_sequences=G` from one
prompt, as TRL samples a GRPO group. Sampling at `--temperature` (0: greedy), no early stop
(`min_new_tokens = max_new_tokens`), KV cache on, float32, torch's default CPU threads; `--device cuda` runs
on the GPU (timings synchronised).
"""

import argparse
import json
import statistics
import time

import torch
from PIL import Image
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", action="append", default=[])
    ap.add_argument("--prompt", default="Describe the image in detail.")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--group", type=int, default=1)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    model_type = json.load(open(f"{a.model}/config.json"))["model_type"]
    cls = Qwen2_5_VLForConditionalGeneration if model_type == "qwen2_5_vl" else Qwen2VLForConditionalGeneration
    model = cls.from_pretrained(a.model, dtype=torch.float32).to(a.device).eval()
    processor = AutoProcessor.from_pretrained(a.model, use_fast=False)
    content = [{"type": "image"} for _ in a.image] + [{"type": "text", "text": a.prompt}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    images = [Image.open(p).convert("RGB") for p in a.image] or None
    inputs = processor(
        text=[text] * a.batch, images=None if images is None else images * a.batch, return_tensors="pt", padding=True
    ).to(a.device)
    kwargs = dict(
        max_new_tokens=a.new_tokens,
        min_new_tokens=a.new_tokens,
        do_sample=a.temperature > 0,
        num_return_sequences=a.group,
        use_cache=True,
    )
    if a.temperature > 0:
        kwargs.update(temperature=a.temperature, top_k=0, top_p=1.0)

    def once():
        with torch.inference_mode():
            out = model.generate(**inputs, **kwargs)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        return (out.shape[1] - inputs["input_ids"].shape[1]) * out.shape[0]

    once()
    times, tokens = [], 0
    for _ in range(a.repeats):
        start = time.perf_counter()
        tokens = once()
        times.append(time.perf_counter() - start)
    secs = statistics.median(times)
    result = {"tokens_per_second": tokens / secs, "seconds": secs, "new_tokens": tokens}
    if a.json:
        print(json.dumps(result))
    else:
        print(f"transformers: {tokens} new tokens in {secs:.3f} s = {tokens / secs:.1f} tokens/s")


if __name__ == "__main__":
    main()
