"""What a Python user would run instead of `repic bench retrieve`: exact top-k cosine over N unit vectors with
torch (matmul + topk) and numpy (matmul + argpartition), one query at a time, median of 20 after a warm-up.

    .venv/bin/python scripts/bench_retrieve.py --concepts 1000 10000 100000 --dim 768
"""

import argparse
import time

import numpy as np
import torch


def unit(rng, n, d):
    v = rng.random((n, d), dtype=np.float32) - 0.5
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def median_ms(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--concepts", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}")
    for n in a.concepts:
        keys = unit(rng, n, a.dim)
        tkeys = torch.from_numpy(keys)

        def torch_query():
            q = torch.from_numpy(unit(rng, 1, a.dim))
            return torch.topk((q @ tkeys.T)[0], 2)

        def numpy_query():
            s = (unit(rng, 1, a.dim) @ keys.T)[0]
            top = np.argpartition(-s, 2)[:2]
            return top[np.argsort(-s[top])]

        print(f"{n} concepts x {a.dim}-d: torch {median_ms(torch_query, a.repeats):.2f} ms, "
              f"numpy {median_ms(numpy_query, a.repeats):.2f} ms (median of {a.repeats})")


if __name__ == "__main__":
    main()
