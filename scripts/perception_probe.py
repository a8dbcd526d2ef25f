#!/usr/bin/env python3
"""Perception probes for the demo's tiny from-scratch Qwen2-VL, trained with PyTorch/transformers as a reference.

Does a tiny Qwen2-VL, trained from random weights, learn to *read its image* within the demo's step budget, and
what makes it learn sooner? This trains the same checkpoint (same config, weights and tokenizer as repic's
`model-init`) with plain PyTorch SFT, so a failure cannot be blamed on repic's trainer. Findings:
docs/demo-notes.md. Not used by CI (needs torch, transformers, pillow).

  # one coloured square on grey per image; answer its colour
  python scripts/perception_probe.py squares /tmp/sq
  # from a `repic synth` set: "Is there a <colour> object in the image?" about OCT scenes
  python scripts/perception_probe.py colour-question /tmp/set
  # SFT from repic-demo/model-init on a probe, then greedy answers scored by exact match of the answer words
  python scripts/perception_probe.py train --data /tmp/sq --model repic-demo/model-init --batch 4 --beta2 0.95
"""

import argparse
import json
import os
import random
import re

COLOURS = {
    "red": (210, 40, 40), "orange": (240, 140, 30), "yellow": (235, 210, 40), "green": (50, 160, 60),
    "teal": (30, 150, 150), "blue": (40, 80, 210), "purple": (130, 60, 180), "pink": (240, 120, 180),
    "brown": (120, 75, 40), "black": (30, 30, 30),
}


def record(image, problem, answer, solution="yes"):
    """A RePIC-format record; `solution` is what `repic eval` scores (the OCT reward) when it is a yes/no."""
    return {"image": image, "problem": problem, "solution": solution, "accu_reward_method": "yes_no", "answer": answer}


def squares(out, side=112, seed=0):
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "img"), exist_ok=True)
    for split, n in [("train", 420), ("eval", 48)]:
        with open(os.path.join(out, f"probe_{split}.jsonl"), "w") as f:
            for i in range(n):
                img = Image.new("RGB", (side, side), (215, 215, 215))
                name = rng.choice(sorted(COLOURS))
                s = rng.randint(side // 7, side // 4)
                x, y = rng.randint(0, side - s), rng.randint(0, side - s)
                ImageDraw.Draw(img).rectangle([x, y, x + s, y + s], fill=COLOURS[name])
                rel = f"img/{split}{i}.png"
                img.save(os.path.join(out, rel))
                f.write(json.dumps(record(rel, "What colour is the object?", f"The colour is {name}.")) + "\n")


def colour_question(data):
    """OCT without the reference image and with the look named: "Is there a <colour> object in the image?" about
    each OCT scene of a `repic synth --distinct-colours` set (where the concept's body colour is in the scene
    exactly when the concept is)."""
    manifest = json.load(open(os.path.join(data, "manifest.json")))
    if not manifest["config"].get("distinct_colours"):
        raise SystemExit(f"{data}: needs a set made with --distinct-colours")
    colour = {c["key"]: c["colour"] for c in manifest["concepts"]}
    for split in ["train", "eval"]:
        with open(os.path.join(data, f"probe_{split}.jsonl"), "w") as f:
            for line in open(os.path.join(data, split, "records.jsonl")):
                r = json.loads(line)
                if r["accu_reward_method"] != "yes_no":
                    continue
                key = re.search(r"<\w+>", r["problem"]).group(0)
                q = f"Is there a {colour[key]} object in the image?"
                f.write(json.dumps(record(r["image"][1], q, r["solution"], r["solution"])) + "\n")


def train(a):
    import torch
    from PIL import Image
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    model = Qwen2VLForConditionalGeneration.from_pretrained(a.model)
    proc = AutoProcessor.from_pretrained(a.model)
    recs = [json.loads(line) for line in open(os.path.join(a.data, "probe_train.jsonl"))]
    held = [json.loads(line) for line in open(os.path.join(a.data, "probe_eval.jsonl"))]
    words = a.words.split(",")

    def prompt(r):
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r["problem"]}]}]
        return proc.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)

    def images(rs):
        return [Image.open(os.path.join(a.data, r["image"])).convert("RGB") for r in rs]

    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, a.beta2), weight_decay=0.0)
    steps = a.epochs * ((len(recs) + a.batch - 1) // a.batch)
    warm = int(0.05 * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / max(1, warm) if s < warm else max(0.0, (steps - s) / max(1, steps - warm))
    )
    proc.tokenizer.padding_side = "right"
    for _ in range(a.epochs):
        rng.shuffle(recs)
        for i in range(0, len(recs), a.batch):
            b = recs[i : i + a.batch]
            imgs = images(b)
            enc = proc(text=[prompt(r) + r["answer"] + "<|im_end|>" for r in b], images=imgs, return_tensors="pt",
                       padding=True)
            labels = enc["input_ids"].clone()
            for j, r in enumerate(b):
                n = proc(text=[prompt(r)], images=[imgs[j]], return_tensors="pt")["input_ids"].shape[1]
                labels[j, :n] = -100
            labels[enc["attention_mask"] == 0] = -100
            model(**enc, labels=labels).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
    model.eval()
    proc.tokenizer.padding_side = "left"

    def accuracy(rs):
        right = 0
        for i in range(0, len(rs), 8):
            b = rs[i : i + 8]
            enc = proc(text=[prompt(r) for r in b], images=images(b), return_tensors="pt", padding=True)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=proc.tokenizer.eos_token_id)
            texts = proc.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for r, t in zip(b, texts):
                want = [w for w in re.findall(r"\w+", r["answer"]) if w in words]
                right += want == [w for w in re.findall(r"\w+", t) if w in words]
        return right / len(rs)

    print(json.dumps({"steps": steps, "train_accuracy": accuracy(recs[:96]), "held_out_accuracy": accuracy(held)}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("squares")
    s.add_argument("out")
    c = sub.add_parser("colour-question")
    c.add_argument("data")
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--model", required=True)
    t.add_argument("--epochs", type=int, default=8)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--beta2", type=float, default=0.999)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--words", default=",".join(list(COLOURS) + ["yes", "no"]))
    a = p.parse_args()
    if a.cmd == "squares":
        squares(a.out)
    elif a.cmd == "colour-question":
        colour_question(a.data)
    else:
        train(a)


if __name__ == "__main__":
    main()
