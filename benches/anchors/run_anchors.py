#!/usr/bin/env python3
"""Anchor baselines for kyro-bench: hnswlib and FAISS IndexHNSWFlat.

Runs both libraries on the same .fvecs/.ivecs files with the same M,
ef_construction, ef sweep, k and build threads as `kyro-bench ann`, and
writes the same JSON schema (with "engine": "hnswlib" / "faiss-hnsw"), so
`kyro-bench plot` can put every curve on one chart.

Measurement matches kyro-bench: build on --threads threads; then, per ef, one
untimed warm-up pass (first ef only) and one timed pass on ONE thread, one
query per call, timing each call. Each run also reports "qps_batch": the same
queries in one batched call, still on one thread. Per-call times include the
Python-to-C++ call overhead (a few microseconds), which matters only at the
lowest ef values.

Cosine is handled by L2-normalising base and queries and using inner product;
dot uses inner product as is; l2 is used directly. Each engine runs in its own
subprocess so that its peak RSS (getrusage) is its own.

Usage:
    pip install -r benches/anchors/requirements.txt
    kyro-bench synth --synthetic 100000,128,64 --out-base b.fvecs \\
        --out-query q.fvecs --out-gt g.ivecs --metric cosine --k 100
    python3 benches/anchors/run_anchors.py --base b.fvecs --query q.fvecs \\
        --gt g.ivecs --metric cosine --m 16 --ef-construction 200 \\
        --ef 10,20,40,80,160,320 --k 10 --threads 2 --out-dir bench-out
    kyro-bench plot --json bench-out/*.json --out bench-out/curve.svg
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

ENGINES = ("hnswlib", "faiss-hnsw")


def read_vecs(path, limit=None):
    """Reads .fvecs / .bvecs as float32 or .ivecs as int32, first `limit` rows."""
    path = Path(path)
    ext = path.suffix.lower()
    elem = {".fvecs": "<f4", ".ivecs": "<i4", ".bvecs": "u1"}.get(ext)
    if elem is None:
        sys.exit(f"{path}: unsupported extension {ext!r}")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size < 4:
        sys.exit(f"{path}: file contains no vectors")
    dim = int(raw[:4].view("<i4")[0])
    row_bytes = 4 + dim * np.dtype(elem).itemsize
    if dim <= 0 or raw.size % row_bytes:
        sys.exit(f"{path}: size {raw.size} is not a whole number of {dim}-d rows")
    rows = raw.reshape(-1, row_bytes)[:limit]
    if np.any(rows[:, :4].copy().view("<i4") != dim):
        sys.exit(f"{path}: rows have inconsistent dimensions")
    values = np.ascontiguousarray(rows[:, 4:]).view(elem)
    return values.astype(np.int32 if ext == ".ivecs" else np.float32)


def dataset_name(base):
    """Same rule as kyro-bench: the file stem, or the directory for NAME/base.fvecs."""
    if base.stem.lower() == "base" and base.parent.name:
        return base.parent.name
    return base.stem


def normalise(x):
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms == 0, 1, norms), dtype=np.float32)


def percentile(sorted_values, p):
    """Nearest-rank percentile, the same definition kyro-bench uses."""
    rank = math.ceil(p / 100 * len(sorted_values))
    return float(sorted_values[min(max(rank, 1), len(sorted_values)) - 1])


def recall(ids, gt, k):
    hits = sum(len(set(row[:k].tolist()) & set(truth[:k].tolist())) for row, truth in zip(ids, gt))
    return hits / (len(ids) * k)


def build_hnswlib(base, space, args):
    import hnswlib

    index = hnswlib.Index(space=space, dim=base.shape[1])
    index.init_index(max_elements=len(base), M=args.m, ef_construction=args.ef_construction,
                     random_seed=args.seed)
    start = time.perf_counter()
    index.add_items(base, np.arange(len(base)), num_threads=args.threads)
    build_seconds = time.perf_counter() - start
    index.set_num_threads(1)
    # hnswlib has no memory API; the saved index is its in-memory layout.
    with tempfile.TemporaryDirectory() as tmp:
        index.save_index(os.path.join(tmp, "index.bin"))
        index_bytes = os.path.getsize(os.path.join(tmp, "index.bin"))

    def set_ef(ef):
        index.set_ef(ef)

    def query(q, k):
        return index.knn_query(q, k=k, num_threads=1)[0]

    return build_seconds, index_bytes, set_ef, query, package_version("hnswlib")


def build_faiss(base, space, args):
    import faiss

    metric = faiss.METRIC_L2 if space == "l2" else faiss.METRIC_INNER_PRODUCT
    faiss.omp_set_num_threads(args.threads)
    index = faiss.IndexHNSWFlat(base.shape[1], args.m, metric)
    index.hnsw.efConstruction = args.ef_construction
    start = time.perf_counter()
    index.add(base)
    build_seconds = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    index_bytes = int(faiss.serialize_index(index).nbytes)

    def set_ef(ef):
        index.hnsw.efSearch = ef

    def query(q, k):
        return index.search(q, k)[1]

    return build_seconds, index_bytes, set_ef, query, package_version("faiss-cpu")


def run_engine(engine, args):
    base = read_vecs(args.base, args.limit)
    queries = read_vecs(args.query, args.query_limit)
    if base.shape[1] != queries.shape[1]:
        sys.exit(f"base dim {base.shape[1]} != query dim {queries.shape[1]}")
    n, dim, k = len(base), base.shape[1], args.k
    if args.metric == "cosine":
        base, queries = normalise(base), normalise(queries)
    space = "l2" if args.metric == "l2" else "ip"

    if args.gt:
        gt = read_vecs(args.gt, len(queries))
        if len(gt) < len(queries) or gt.shape[1] < k:
            sys.exit(f"{args.gt}: ground truth is {gt.shape}, need {len(queries)} x >= {k}")
        if gt[:, :k].max() >= n:
            sys.exit(f"{args.gt}: ids beyond the {n} base vectors loaded (--limit?)")
    else:
        import faiss  # exact search, only when no ground truth file is given

        flat = faiss.IndexFlatL2(dim) if space == "l2" else faiss.IndexFlatIP(dim)
        flat.add(base)
        gt = flat.search(queries, k)[1]
        print("ground truth: computed with faiss.IndexFlat (ties may order differently "
              "from kyro-bench gt)", file=sys.stderr)

    builder = build_hnswlib if engine == "hnswlib" else build_faiss
    build_seconds, index_bytes, set_ef, query, version = builder(base, space, args)
    print(f"{engine}: built {n} x {dim} in {build_seconds:.2f} s on {args.threads} threads",
          file=sys.stderr)

    set_ef(args.ef[0])
    for i in range(len(queries)):  # untimed warm-up pass
        query(queries[i:i + 1], k)

    runs = []
    for ef in args.ef:
        set_ef(ef)
        ids = np.empty((len(queries), k), dtype=np.int64)
        latencies = np.empty(len(queries))
        loop_start = time.perf_counter()
        for i in range(len(queries)):
            start = time.perf_counter()
            found = query(queries[i:i + 1], k)
            latencies[i] = time.perf_counter() - start
            ids[i] = found[0]
        wall = time.perf_counter() - loop_start
        start = time.perf_counter()
        query(queries, k)
        batch_wall = time.perf_counter() - start
        latencies_us = np.sort(latencies) * 1e6
        runs.append({
            "ef": ef,
            "recall": recall(ids, gt, k),
            "qps": len(queries) / wall,
            "qps_batch": len(queries) / batch_wall,
            "p50_us": percentile(latencies_us, 50),
            "p99_us": percentile(latencies_us, 99),
            "mean_us": float(latencies_us.mean()),
        })
        print(f"{engine} ef {ef:>5}: recall@{k} {runs[-1]['recall']:.4f}, "
              f"{runs[-1]['qps']:.0f} QPS (batch {runs[-1]['qps_batch']:.0f})", file=sys.stderr)

    return {
        "engine": engine,
        "engine_version": version,
        "dataset": dataset_name(Path(args.base)),
        "n": n,
        "dim": dim,
        "metric": args.metric,
        "m": args.m,
        "ef_construction": args.ef_construction,
        "threads": args.threads,
        "quantization": "none",
        "build_seconds": build_seconds,
        "index_bytes": index_bytes,
        # Linux reports ru_maxrss in KiB.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "runs": runs,
        "k": k,
        "n_queries": len(queries),
        "build_vectors_per_second": n / build_seconds,
        "bytes_per_vector": index_bytes / n,
    }


def print_table(report):
    print(f"\n{report['engine']} {report['engine_version']} on {report['dataset']}: "
          f"n={report['n']} dim={report['dim']} metric={report['metric']} "
          f"M={report['m']} ef_construction={report['ef_construction']}")
    print(f"build   {report['build_seconds']:.2f} s on {report['threads']} threads, "
          f"index {report['index_bytes'] / 2**20:.1f} MiB, "
          f"peak RSS {report['peak_rss_bytes'] / 2**20:.1f} MiB")
    print(f"{'ef':>6}  {'recall@' + str(report['k']):>10}  {'QPS':>10}  {'QPS batch':>10}  "
          f"{'p50 us':>9}  {'p99 us':>9}")
    for r in report["runs"]:
        print(f"{r['ef']:>6}  {r['recall']:>10.4f}  {r['qps']:>10.0f}  {r['qps_batch']:>10.0f}  "
              f"{r['p50_us']:>9.1f}  {r['p99_us']:>9.1f}")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help=".fvecs or .bvecs base vectors")
    p.add_argument("--query", required=True, help=".fvecs or .bvecs queries")
    p.add_argument("--gt", help=".ivecs ground truth (row numbers); exact FAISS search if omitted")
    p.add_argument("--metric", choices=("cosine", "dot", "l2"), default="cosine")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", type=lambda s: [int(v) for v in s.split(",")],
                   default=[10, 20, 40, 80, 160, 320], help="comma-separated ef values")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="build threads")
    p.add_argument("--seed", type=int, default=42, help="hnswlib level seed")
    p.add_argument("--limit", type=int, help="use only the first N base vectors")
    p.add_argument("--query-limit", type=int, help="use only the first N queries")
    p.add_argument("--engine", choices=ENGINES + ("all",), default="all")
    p.add_argument("--out-dir", default="bench-out", help="JSON goes to DIR/DATASET.ENGINE.json")
    return p.parse_args()


def main():
    args = parse_args()
    if args.engine == "all":
        # One process per engine keeps each peak RSS figure to itself.
        for engine in ENGINES:
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--engine", engine], check=True)
        return
    report = run_engine(args.engine, args)
    print_table(report)
    out = Path(args.out_dir) / f"{report['dataset']}.{args.engine}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
