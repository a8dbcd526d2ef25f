#!/usr/bin/env python3
"""Tiny random Qwen2-VL / Qwen2.5-VL checkpoints and transformers reference outputs for repic's parity tests.

Run by a developer, never by CI (it needs torch and transformers from PyPI):

    python -m venv .venv && .venv/bin/pip install torch==2.9.0 torchvision==0.24.0 transformers==4.57.1 pillow==11.3.0 numpy
    .venv/bin/python scripts/make_parity_fixtures.py --out models/tests/fixtures

and the same Qwen variants saved by transformers 5 (its own `save_pretrained`: `rope_parameters` instead of
`rope_theta` + `rope_scaling`, the processor's `size.{shortest_edge,longest_edge}`):

    python -m venv .venv5 && .venv5/bin/pip install torch==2.9.0 torchvision==0.24.0 transformers==5.25.0 pillow==11.3.0 numpy
    .venv5/bin/python scripts/make_parity_fixtures.py --out models/tests/fixtures/tf5 \
        --only qwen2_vl qwen2_vl_flat qwen2_5_vl qwen2_5_vl_b

Each model folder is a Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json with the Qwen2-VL chat template, preprocessor_config.json, generation_config.json) plus
`reference.safetensors` / `reference.json`: for every case (image + text, two images, text only) the templated
prompt, input ids, pixel values, image grids, M-RoPE position ids, vision features, last-position logits, greedy
tokens and their log-probs. Variants differ in sizes, head counts, mrope sections and config layout (nested
`text_config` as transformers 4.57 writes it, or the flat layout of the Hub's Qwen2-VL files).

Pillow is pinned to 11.3.0: the slow Qwen2-VL processor resizes with PIL, and Pillow 13 changed the order of
the two bicubic passes for some sizes (pixels then differ by up to ~20/255); repic reproduces Pillow <= 12.
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tokenizers import processors
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    Qwen2TokenizerFast,
)

TRANSFORMERS_5 = int(__import__("transformers").__version__.split(".")[0]) >= 5

CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
CORPUS = [
    "You are a helpful assistant.", "Describe the image in detail.", "Give a personalized caption of this image.",
    "Is <bo> in this image? Answer with yes or no.", "The final answer must be either 'yes' or 'no'.",
    "For bounding box coordinates, return the final answer in JSON format.", "system user assistant",
    "A blue striped cube sits next to a red ball on a pastel background.", "<bo> and <mam> are playing.",
]


def build_tokenizer(vocab: int) -> Qwen2TokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab - len(SPECIALS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False, special_tokens=[])
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.add_special_tokens(SPECIALS)
    fast = Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIALS[1:])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def images(seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for (w, h) in [(130, 90), (61, 75), (200, 100)]:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) * 3) % 256], -1)
        noise = rng.integers(-40, 40, size=(h, w, 3))
        out.append(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB"))
    return out


VARIANTS = {
    # name: (arch, text dims, vision dims, layout, weight dtype)
    "qwen2_vl": ("qwen2_vl", dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, mrope=[2, 3, 3]),
                 dict(depth=2, embed_dim=32, num_heads=4, mlp_ratio=2), "nested", torch.float32),
    "qwen2_vl_flat": ("qwen2_vl", dict(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=2,
                                       num_key_value_heads=1, mrope=[4, 4, 4]),
                      dict(depth=1, embed_dim=48, num_heads=3, mlp_ratio=3, hidden_act="gelu"), "flat", torch.bfloat16),
    "qwen2_5_vl": ("qwen2_5_vl", dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, mrope=[2, 3, 3]),
                   dict(depth=3, hidden_size=32, num_heads=2, intermediate_size=48, window_size=56,
                        fullatt_block_indexes=[1]), "nested", torch.float32),
    "qwen2_5_vl_b": ("qwen2_5_vl", dict(hidden_size=96, intermediate_size=64, num_hidden_layers=2, num_attention_heads=6,
                                        num_key_value_heads=3, mrope=[2, 2, 4]),
                     dict(depth=2, hidden_size=64, num_heads=4, intermediate_size=80, window_size=112,
                          fullatt_block_indexes=[0], hidden_act="gelu_pytorch_tanh"), "nested", torch.bfloat16),
}


def rope_index(model, inputs, grid):
    """M-RoPE positions and deltas as the installed transformers computes them (4.57 and 5.x signatures)."""
    ids = inputs["input_ids"]
    if TRANSFORMERS_5:
        if grid is None:  # text only: transformers 5 leaves positions to the default 1-D ones
            n = ids.shape[1]
            return torch.arange(n).view(1, 1, n).expand(3, 1, n), torch.zeros(1, dtype=torch.long)
        return model.model.get_rope_index(ids, inputs["mm_token_type_ids"], grid, None, inputs["attention_mask"])
    return model.model.get_rope_index(ids, grid, None, inputs["attention_mask"])


def make(name: str, out: Path, seed: int):
    arch, tdims, vdims, layout, dtype = VARIANTS[name]
    d = out / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "model.safetensors").unlink(missing_ok=True)
    torch.manual_seed(seed)
    tok = build_tokenizer(320)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    mrope = tdims.pop("mrope")
    text = dict(tdims, vocab_size=len(tok), rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=512,
                tie_word_embeddings=(arch == "qwen2_vl"), rope_scaling={"type": "mrope", "mrope_section": mrope},
                initializer_range=0.1, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
    special = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                   vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    if arch == "qwen2_vl":
        vision = {"hidden_act": "quick_gelu", **vdims, "hidden_size": tdims["hidden_size"], "patch_size": 14,
                  "spatial_merge_size": 2, "temporal_patch_size": 2, "in_chans": 3, "initializer_range": 0.1}
        cfg = Qwen2VLConfig(text_config=text, vision_config=vision, **special, **text)
        model = Qwen2VLForConditionalGeneration(cfg)
    else:
        vision = {"hidden_act": "silu", **vdims, "out_hidden_size": tdims["hidden_size"], "patch_size": 14,
                  "spatial_merge_size": 2, "temporal_patch_size": 2, "in_chans": 3, "tokens_per_second": 2,
                  "initializer_range": 0.1}
        if TRANSFORMERS_5 and name == "qwen2_5_vl":
            # A vision rotary base other than the 10000 transformers 4 fixes (transformers 5 reads it from here).
            vision["rope_parameters"] = {"rope_type": "axial", "rope_theta": 500.0}
        cfg = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **special, **text)
        model = Qwen2_5_VLForConditionalGeneration(cfg)
    with torch.no_grad():
        for p in model.parameters():  # spread weights so logits are far from ties
            p.normal_(0.0, 0.1 if p.dim() > 1 else 0.3)
        for n, p in model.named_parameters():
            if n.endswith("norm.weight") or "norm1" in n or "norm2" in n or "ln_q" in n or "layernorm" in n:
                if n.endswith("weight"):
                    p.uniform_(0.7, 1.3)
    model.eval()
    # bf16 variants: save bf16 weights, and compute the references in f32 from exactly those weights (rounding
    # the parameters only: `model.to(bf16)` would also round the rotary inv_freq buffers).
    state = {k: v.to(dtype) for k, v in model.state_dict().items()}
    model.save_pretrained(d, safe_serialization=True, state_dict=state)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    if layout == "flat":  # the Hub's Qwen2-VL layout: text fields at the top, no text_config
        c = json.loads((d / "config.json").read_text())
        t = c.pop("text_config")
        for k, v in t.items():
            c.setdefault(k, v)
        c["vision_config"].pop("initializer_range", None)
        (d / "config.json").write_text(json.dumps(c, indent=2))
    if TRANSFORMERS_5:
        # transformers 5's default Qwen2VLImageProcessor resizes with torchvision (uint8 antialiased bicubic,
        # int16 weights), up to 2/255 off PIL per pixel; its PIL backend is the processor repic reproduces.
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
        improc = Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 20})
    else:
        improc = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 20)
    processor = Qwen2VLProcessor(image_processor=improc, tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                                 chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(d)
    tok.save_pretrained(d)

    pics = images(seed)
    for i, p in enumerate(pics):
        p.save(d / f"image{i}.png")
    cases = {
        "image_text": ([{"type": "image"}, {"type": "text", "text": "Describe <bo> in detail."}], [pics[0]]),
        "two_images": ([{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Is <bo> in this image?"}],
                       [pics[1], pics[2]]),
        "text_only": ([{"type": "text", "text": "Give a personalized caption of this image."}], []),
    }
    tensors, meta = {}, {"model": name, "transformers": __import__("transformers").__version__, "cases": {}}
    for case, (content, imgs) in cases.items():
        messages = [{"role": "user", "content": content}]
        prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = processor(text=[prompt], images=imgs or None, return_tensors="pt")
        with torch.no_grad():
            grid = inputs.get("image_grid_thw")
            pos, delta = rope_index(model, inputs, grid)
            out = model(**inputs)
            gen = model.generate(**inputs, max_new_tokens=8, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True, eos_token_id=None, pad_token_id=ids["<|endoftext|>"])
        new = gen.sequences[0, inputs["input_ids"].shape[1]:]
        logps = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(gen.scores, new)]
        tensors[f"{case}.logits_last"] = out.logits[0, -1].float().contiguous()
        tensors[f"{case}.position_ids"] = pos[:, 0].contiguous()
        tensors[f"{case}.input_ids"] = inputs["input_ids"][0].contiguous()
        entry = {"messages": messages, "prompt": prompt, "images": [f"image{pics.index(im)}.png" for im in imgs],
                 "greedy_tokens": new.tolist(), "greedy_logprobs": logps, "rope_delta": int(delta[0].item())}
        if imgs:
            with torch.no_grad():
                feats = model.model.get_image_features(inputs["pixel_values"], grid)
                if TRANSFORMERS_5:  # an output object; the merged features per image are its pooler output
                    feats = feats.pooler_output
            tensors[f"{case}.pixel_values"] = inputs["pixel_values"].float().contiguous()
            tensors[f"{case}.image_grid_thw"] = grid.contiguous()
            tensors[f"{case}.vision_features"] = torch.cat(list(feats), 0).float().contiguous()
        meta["cases"][case] = entry
    save_file(tensors, str(d / "reference.safetensors"))
    (d / "reference.json").write_text(json.dumps(meta, indent=1))
    print(f"{name}: {sum(f.stat().st_size for f in d.iterdir()) / 1024:.0f} KiB")


def make_clip(out: Path, seed: int):
    """A tiny CLIP with its tokenizer and image processor; references: pixel values, ids and embeddings."""
    d = out / "clip"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    torch.manual_seed(seed)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.normalizer = __import__("tokenizers").normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=200, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])
    bos, eos = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|endoftext|>")
    cfg = CLIPConfig(
        text_config=dict(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=48, bos_token_id=bos, eos_token_id=eos,
                         hidden_act="quick_gelu"),
        vision_config=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=56, patch_size=14, hidden_act="quick_gelu"),
        projection_dim=24)
    model = CLIPModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1 if p.dim() > 1 else 0.3)
        for n, p in model.named_parameters():
            if ("norm" in n or "layrnorm" in n) and n.endswith("weight"):
                p.uniform_(0.7, 1.3)
    model.eval()
    model.save_pretrained(d, safe_serialization=True)
    fast.save_pretrained(d)
    proc = CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    proc.save_pretrained(d)
    pics = images(seed)
    names = []
    for i, p in enumerate(pics):
        p.save(d / f"image{i}.png")
        names.append(f"image{i}.png")
    texts = ["a photo of a blue striped cube", "A Photo of <bo>.", "yes"]
    px = proc(images=pics, return_tensors="pt")["pixel_values"]
    ids = [fast(t)["input_ids"] for t in texts]
    with torch.no_grad():
        img = model.get_image_features(pixel_values=px)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = [model.get_text_features(input_ids=torch.tensor([i])) for i in ids]
        txt = torch.cat([t / t.norm(dim=-1, keepdim=True) for t in txt])
    save_file({"pixel_values": px.float().contiguous(), "image_embeds": img.float().contiguous(),
               "text_embeds": txt.float().contiguous()}, str(d / "reference.safetensors"))
    (d / "reference.json").write_text(json.dumps({"images": names, "texts": texts, "input_ids": ids}, indent=1))
    print(f"clip: {sum(f.stat().st_size for f in d.iterdir()) / 1024:.0f} KiB")


def main():
    assert PIL.__version__.split(".")[0] in ("10", "11", "12"), f"use pillow<13, not {PIL.__version__} (see above)"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("models/tests/fixtures"))
    ap.add_argument("--only", nargs="*", default=[*VARIANTS, "clip"])
    args = ap.parse_args()
    if "clip" in args.only:
        make_clip(args.out, seed=2000)
    for name in (n for n in args.only if n != "clip"):
        make(name, args.out, seed=1000 + list(VARIANTS).index(name))


if __name__ == "__main__":
    main()
