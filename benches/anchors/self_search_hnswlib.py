"""Self-search recall of hnswlib on the crash test's vectors: the anchor for
kyro-engine's `self_search` example (same vectors, same parameters: M 16,
ef_construction 200, two threads, cosine). Prints the points whose own
vector finds another point first, at each ef.

    pip install -r benches/anchors/requirements.txt
    python3 benches/anchors/self_search_hnswlib.py 150000 64 256
"""

import sys
import time

import hnswlib
import numpy as np

DIM = 384


def uniform(n: int) -> np.ndarray:
    """The crash test's vectors of seeds i * 1,000,000 + 7 (a xorshift per
    row, uniform in [-1, 1)), as `self_search.rs` draws them."""
    seeds = np.arange(n, dtype=np.uint64) * np.uint64(1_000_000) + np.uint64(7)
    with np.errstate(over="ignore"):
        state = seeds * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1)
        rows = np.empty((n, DIM), dtype=np.float32)
        for j in range(DIM):
            state ^= state << np.uint64(13)
            state ^= state >> np.uint64(7)
            state ^= state << np.uint64(17)
            rows[:, j] = (state % np.uint64(2000)).astype(np.float32) / 1000.0 - 1.0
    return rows


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 150_000
    efs = [int(a) for a in sys.argv[2:]] or [64, 256]
    rows = uniform(n)
    index = hnswlib.Index(space="cosine", dim=DIM)
    index.init_index(max_elements=n, M=16, ef_construction=200, random_seed=42)
    index.set_num_threads(2)
    started = time.time()
    index.add_items(rows, np.arange(n))
    print(f"built {n} points in {time.time() - started:.1f} s", flush=True)
    for ef in efs:
        index.set_ef(ef)
        labels, _ = index.knn_query(rows, k=1)
        misses = int((labels[:, 0] != np.arange(n)).sum())
        print(f"hnswlib n {n} ef {ef}: misses {misses}", flush=True)


if __name__ == "__main__":
    main()
