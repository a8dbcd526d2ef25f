"""Check a CLIP encoder written by repic (`repic demo`'s `encoder/`, `repic_models::save_clip`) against
transformers: load it with `CLIPModel`, embed every image of a concept store made with it, and compare with the
embeddings repic stored (cosine per image), and show how its tokenizer wraps a text.

    .venv5/bin/python scripts/check_saved_clip.py repic-demo/encoder repic-demo/store
"""

import sqlite3
import sys

import numpy as np
import torch
from PIL import Image
from transformers import CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast


def main(encoder: str, store: str):
    model = CLIPModel.from_pretrained(encoder).eval()
    proc = CLIPImageProcessor.from_pretrained(encoder)
    con = sqlite3.connect(f"{store}/concepts.sqlite")
    rows = con.execute("SELECT i.file, e.vector FROM images i JOIN embeddings e "
                       "ON e.hash = i.hash AND e.kind = 'image'").fetchall()
    worst = 1.0
    for file, blob in rows:
        stored = np.frombuffer(blob, dtype="<f4")
        px = proc(images=[Image.open(f"{store}/{file}").convert("RGB")], return_tensors="pt")
        with torch.no_grad():
            out = model.get_image_features(**px)
            out = out if torch.is_tensor(out) else out.pooler_output  # transformers 5 returns an output object
        mine = (out / out.norm(dim=-1, keepdim=True))[0].numpy()
        worst = min(worst, float(np.dot(mine, stored)))
    print(f"{len(rows)} images: lowest cosine between transformers' and repic's embedding {worst:.7f}")
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{encoder}/tokenizer.json")
    print("token ids of 'a red ball':", tok("a red ball")["input_ids"])
    assert worst > 0.9999, "the saved encoder does not reproduce repic's embeddings"


if __name__ == "__main__":
    main(*sys.argv[1:3])
