#!/usr/bin/env bash
# A short check on other Pythons: for each VERSION given (e.g. 3.12 3.13), a venv from
# locks/pyVERSION.txt (hash-checked), then the tiny round trip through the CLI: generated
# images, `deitkit finetune` (a small scratch DeiT, 1 epoch), the package it writes, `deitkit
# predict` on one image. Run by .ci/run after `make test` (which covers Python 3.11 in full).
# Usage: bash tools/smoke_python.sh 3.12 3.13   (needs .venv/uv from `make setup`)
set -euo pipefail
cd "$(dirname "$0")/.."
UV=.venv/uv/bin/uv
# The CLI on the project's tiny settings: offline, one thread, no ONNX export (no onnx here).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export MLFLOW_DISABLE_TELEMETRY=true OMP_NUM_THREADS=1 DEITKIT_ONNX_EXPORT=off

find_python() {  # python3.X on PATH, or pyenv's build of it (its shim fails outside pyenv)
    if python"$1" -c '' 2>/dev/null; then command -v python"$1"; return; fi
    local found=("${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/python"$1")
    [ -x "${found[-1]}" ] || { echo "error: no python$1 (e.g. pyenv install $1)" >&2; exit 1; }
    echo "${found[-1]}"
}

for version in "$@"; do
    start=$SECONDS
    python=$(find_python "$version")
    venv=.venv-py$version
    work=$(mktemp -d)
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # pip's sources on this machine (none elsewhere: PyPI); the lock's exact pins and hashes.
    # shellcheck disable=SC2046
    "$UV" pip sync --quiet --python "$venv/bin/python" --require-hashes \
        --index-strategy unsafe-best-match $(python3 tools/pip_index_args.py --sources) \
        "locks/py$version.txt"
    "$UV" pip install --quiet --python "$venv/bin/python" --no-deps .
    installed=$SECONDS
    "$venv/bin/python" - "$work/data" <<'PY'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

rng = np.random.default_rng(0)
for name, colour in {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}.items():
    (Path(sys.argv[1]) / name).mkdir(parents=True)
    for i in range(6):
        pixels = np.clip(np.array(colour) + rng.normal(0, 20, (20, 20, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(Path(sys.argv[1]) / name / f"{i}.png")
PY
    "$venv/bin/deitkit" finetune --train "$work/data" --output "$work/out" \
        --task image-classification --epochs 1 --model \
        "scratch:deit-tiny:image_size=16,num_hidden_layers=2,hidden_size=32,num_attention_heads=4,intermediate_size=64" \
        > "$work/finetune.log" 2>&1 || { tail -40 "$work/finetune.log"; exit 1; }
    model=$(dirname "$(find "$work/out" -name MLmodel | head -1)")
    [ -d "$model" ] || { echo "error: finetune wrote no package under $work/out" >&2; exit 1; }
    "$venv/bin/deitkit" predict --model "$model" "$work/data/red/0.png" | tee "$work/predict.txt"
    grep -q -E "red|green|blue" "$work/predict.txt" \
        || { echo "error: predict named no label" >&2; exit 1; }
    echo "python $version: $("$venv/bin/python" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)'); set-up $((installed - start)) s, round trip $((SECONDS - installed)) s"
    # ~5 GB each where uv cannot hard-link from its cache: kept only when the run failed.
    rm -rf "$work" "$venv"
done
