#!/usr/bin/env bash
# Runs kyro-bench (f32 and i8) and the anchors (hnswlib, FAISS HNSW) on the same
# files with the same parameters, one after the other in one run, then prints
# the side-by-side summary and draws the curves.
#
#   benches/compare.sh BASE.fvecs QUERY.fvecs GT.ivecs METRIC OUT_DIR [EF_LIST]
set -euo pipefail
cd "$(dirname "$0")/.."
base=$1 query=$2 gt=$3 metric=$4 out=$5
efs=${6:-10,16,20,24,28,32,40,48,64,96,128,256}
threads=${THREADS:-2}
mkdir -p "$out"
cargo build --release -p kyro-bench
bench=${CARGO_TARGET_DIR:-target}/release/kyro-bench
common=(--base "$base" --query "$query" --gt "$gt" --metric "$metric" --m 16 --ef-construction 200 --ef "$efs" --k 10 --threads "$threads")
"$bench" ann "${common[@]}" --json "$out/kyrodb.json"
"$bench" ann "${common[@]}" --quantization i8 --json "$out/kyrodb-i8.json"
python3 benches/anchors/run_anchors.py "${common[@]}" --out-dir "$out"
python3 benches/anchors/compare.py --recall 0.95 "$out"/*.json | tee "$out/summary.txt"
"$bench" plot --json "$out"/*.json --out "$out/curve.svg"
