"""Reference rankings for retrieval parity: transformers' CLIP (the tiny random checkpoint in
models/tests/fixtures/clip, made by make_parity_fixtures.py) embeds 8 concept images, their info texts and 4
query images; this writes the images, a RAP database.json and, per query, every concept ranked by RAP's image
cosine and by R2P's score 0.5 * (cos(q, f_V) + cos(q, f_T)), into personalize/tests/fixtures/retrieval.

    python -m venv .venv5 && .venv5/bin/pip install torch==2.9.0 transformers==5.25.0 pillow==11.3.0 numpy
    .venv5/bin/python scripts/make_retrieval_fixture.py
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "models/tests/fixtures/clip"
OUT = ROOT / "personalize/tests/fixtures/retrieval"
INFOS = ["a blue striped cube", "a red ball", "a pastel background", "<bo> is playing",
         "the final answer", "a helpful assistant", "a personalized caption", "yes or no"]


def picture(rng, w, h, hue):
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // max(w - 1, 1) + hue) % 256, (yy * 255 // max(h - 1, 1) + 2 * hue) % 256,
                     ((xx + yy) * 3 + 3 * hue) % 256], -1)
    noise = rng.integers(-30, 30, size=(h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def features(out):
    # transformers 5 returns a model output from get_*_features; 4.x a tensor.
    return out if torch.is_tensor(out) else out.pooler_output


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    rng = np.random.default_rng(7)
    model = CLIPModel.from_pretrained(CLIP).eval()
    proc = CLIPImageProcessor.from_pretrained(CLIP)
    tok = PreTrainedTokenizerFast.from_pretrained(CLIP)
    refs, queries = [], []
    for i in range(8):
        name = f"ref{i}.png"
        picture(rng, 40 + 7 * i, 36 + 5 * i, 31 * i).save(OUT / name)
        refs.append(name)
    for i in range(4):
        name = f"query{i}.png"
        # A query resembles reference 2i (same hue, another size and noise).
        picture(rng, 50 + 9 * i, 44, 62 * i).save(OUT / name)
        queries.append(name)
    keys = [f"<c{i}>" for i in range(8)]
    db = {"concept_dict": {k: {"name": k[1:-1], "image": r, "info": t, "category": "thing"}
                           for k, r, t in zip(keys, refs, INFOS)},
          "path_to_concept": dict(zip(refs, keys))}
    (OUT / "database.json").write_text(json.dumps(db, indent=4))
    load = lambda names: proc(images=[Image.open(OUT / n).convert("RGB") for n in names], return_tensors="pt")
    with torch.no_grad():
        fv = unit(features(model.get_image_features(**load(refs))))
        fq = unit(features(model.get_image_features(**load(queries))))
        ft = torch.cat([unit(features(model.get_text_features(input_ids=torch.tensor([tok(t)["input_ids"]]))))
                        for t in INFOS])
    cos_v, cos_t = fq @ fv.T, fq @ ft.T
    r2p = 0.5 * (cos_v + cos_t)
    ranked = lambda row: [[keys[j], float(row[j])] for j in torch.argsort(row, descending=True).tolist()]
    ref = {q: {"rap": ranked(cos_v[i]), "r2p": ranked(r2p[i])} for i, q in enumerate(queries)}
    (OUT / "reference.json").write_text(json.dumps(ref, indent=1))
    print(f"retrieval: {sum(f.stat().st_size for f in OUT.iterdir()) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
