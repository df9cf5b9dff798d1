#!/usr/bin/env bash
# Text embeddings side by side (issue 16): kyro-embed (batches at f32 and
# int8, and 64 concurrent single-text callers through its micro-batcher at
# int8) against ONNX
# Runtime int8 and f32 (the f32 graph is written from model.safetensors by
# benches/anchors/minilm_f32_onnx.py), on the same texts,
# 2 threads, in one run. Writes JSON per run into $OUT (default
# target/embed-compare) and prints one line per run.
#
#   benches/embed-compare.sh
#
# EMBED_BENCH=example measures kyro-embed with its `embed_bench` example (the
# same code as `kyro-bench embed`, without building RocksDB).
#
# Needs: scripts/fetch-model.sh (the model), pip install -r
# benches/anchors/requirements-embed.txt, and the shared data set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh
data="${KYRO_DATASETS:-../shared/datasets}/minilm-npm-50k"
out="${OUT:-target/embed-compare}"
mkdir -p "$out"
f32_model="$out/minilm-f32.onnx"
[ -s "$f32_model" ] || python3 benches/anchors/minilm_f32_onnx.py "$f32_model" >/dev/null
if [ "${EMBED_BENCH:-}" = example ]; then
    cargo build --release -q -p kyro-embed --example embed_bench
    kyro() { "${CARGO_TARGET_DIR:-target}/release/examples/embed_bench" "$@"; }
else
    cargo build --release -q -p kyro-bench
    kyro() { "${CARGO_TARGET_DIR:-target}/release/kyro-bench" embed "$@"; }
fi
head -n 10000 "$data/base.txt" > "$out/base10k.txt"

run_set() { # name texts reference
    local name="$1" texts="$2" reference="$3"
    echo "== $name"
    kyro --texts "$texts" --reference "$reference" --batch 32 --threads 2 --precision f32 --json "$out/$name-kyro-f32.json"
    kyro --texts "$texts" --reference "$reference" --batch 32 --threads 2 --precision int8 --json "$out/$name-kyro-int8.json"
    kyro --texts "$texts" --reference "$reference" --callers 64 --threads 2 --precision int8 --json "$out/$name-kyro-int8-callers64.json"
    python3 benches/anchors/embed_ort.py --texts "$texts" --reference "$reference" --model int8 \
        --batch 32 --threads 2 --json "$out/$name-ort-int8.json"
    python3 benches/anchors/embed_ort.py --texts "$texts" --reference "$reference" --model "$f32_model" \
        --batch 32 --threads 2 --json "$out/$name-ort-f32.json"
}
run_set query "$data/query.txt" "$data/query.fvecs"
run_set base10k "$out/base10k.txt" "$data/base.fvecs"
