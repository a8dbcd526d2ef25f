#!/usr/bin/env python3
"""A randomly initialised Qwen2-VL checkpoint with the layer shapes of Qwen2-VL-2B-Instruct, for GPU benchmarks.

Developer tool, never run by CI (needs torch + transformers). No weights can be downloaded where repic is
developed, so the benchmark model is made here: the tokenizer, chat template and processor files come from a
tiny fixture (`models/tests/fixtures/qwen2_vl`), and so do the vocabulary size and special-token ids; every
other dimension is Qwen2-VL-2B's (28 decoder layers of width 1536, MLP 8960, 12 heads / 2 KV heads; a 32-block
vision tower of width 1280). With the fixture's small vocabulary that is about 1.5 B parameters; weights are
random (std 0.02), so only speed means anything.

    python3 scripts/make_bench_model.py --from models/tests/fixtures/qwen2_vl --out /tmp/qwen2vl-2b-shape
    # the CPU serving benchmark's mid-size model: 2B-shaped layers, 4 of them, a 2-block vision tower
    python3 scripts/make_bench_model.py --from models/tests/fixtures/qwen2_vl --out /tmp/qwen2vl-4l --layers 4 \
        --vision-depth 2
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

TEXT = dict(
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    rope_theta=1000000.0,
    max_position_embeddings=32768,
    initializer_range=0.02,
)
VISION = dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, initializer_range=0.02)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="src", required=True, help="tiny Qwen2-VL fixture (tokenizer and ids)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--layers", type=int, default=TEXT["num_hidden_layers"], help="decoder layers")
    ap.add_argument("--vision-depth", type=int, default=VISION["depth"], help="vision blocks")
    a = ap.parse_args()
    TEXT["num_hidden_layers"], VISION["depth"] = a.layers, a.vision_depth
    src, out = Path(a.src), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name not in ("reference.json", "config.json"):
            shutil.copy(f, out / f.name)
    cfg = json.loads((src / "config.json").read_text())
    layers = TEXT["num_hidden_layers"]
    cfg.update(TEXT)
    cfg["rope_scaling"] = {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"}
    cfg["text_config"].update(TEXT)
    cfg["text_config"]["rope_scaling"] = cfg["rope_scaling"]
    cfg["text_config"]["layer_types"] = ["full_attention"] * layers
    cfg["vision_config"].update(VISION)
    cfg["dtype"] = "bfloat16"
    (out / "config.json").write_text(json.dumps(cfg, indent=2))

    torch.manual_seed(0)
    with torch.device(a.device):
        model = Qwen2VLForConditionalGeneration(Qwen2VLConfig.from_pretrained(out)).to(torch.bfloat16)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if cfg["text_config"].get("tie_word_embeddings", True):
        state.pop("lm_head.weight", None)
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    params = sum(v.numel() for v in state.values())
    print(f"{out}: {params / 1e9:.2f} B parameters (bf16)")


if __name__ == "__main__":
    main()
