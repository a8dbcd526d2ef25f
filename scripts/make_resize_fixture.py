"""Reference outputs of torchvision's uint8 antialiased bicubic resize (what transformers' fast image processors
do, the default of transformers 5) for models/tests/resize.rs: three small RGB images resized down and up, on
one axis and on both (and how many of them Pillow's BICUBIC gets wrong). Writes
models/tests/fixtures/resize/{input_*.png, cases.json, expected.safetensors}.

Usage: python scripts/make_resize_fixture.py   (checked with torch 2.9.0, torchvision 0.24.0, Pillow 12)
"""
import json
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.numpy import save_file
from torchvision.transforms.v2 import functional as F

OUT = Path("models/tests/fixtures/resize")
SIZES = [(31, 23), (64, 48), (97, 61), (120, 40), (17, 90), (110, 84), (45, 100), (67, 67)]


def inputs():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:75, 0:90]
    smooth = np.stack([xx * 255 / 89, yy * 255 / 74, (xx + yy) * 255 / 163], -1)
    noisy = np.clip(smooth + rng.integers(-60, 60, size=smooth.shape), 0, 255)
    sharp = ((xx // 6 + yy // 6) % 2)[..., None] * np.array([250, 10, 200]) + 3
    return {"smooth": smooth, "noisy": noisy, "sharp": sharp}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tensors, cases, differ = {}, [], []
    for name, arr in inputs().items():
        img = Image.fromarray(arr.astype(np.uint8))
        img.save(OUT / f"input_{name}.png")
        chw = torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()
        for w, h in SIZES:
            tv = F.resize(chw, [h, w], interpolation=F.InterpolationMode.BICUBIC, antialias=True)
            key = f"{name}_{w}x{h}"
            tensors[f"torchvision/{key}"] = tv.permute(1, 2, 0).contiguous().numpy()
            pil = np.asarray(img.resize((w, h), Image.BICUBIC))
            differ.append(int((tensors[f"torchvision/{key}"] != pil).any()))
            cases.append({"input": f"input_{name}.png", "width": w, "height": h, "key": key})
    save_file(tensors, OUT / "expected.safetensors")
    meta = {"torch": torch.__version__, "torchvision": torchvision.__version__, "pillow": Image.__version__,
            "cases": cases}
    (OUT / "cases.json").write_text(json.dumps(meta, indent=1))
    print(f"{len(cases)} cases; Pillow's BICUBIC differs from torchvision's on {sum(differ)}")


if __name__ == "__main__":
    main()
