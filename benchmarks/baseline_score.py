"""The serving benchmark's baseline: azmlinfsrv entry script around transformers' pipeline, fp32.

The plain way to serve a Hugging Face image classifier: `pipeline("image-classification")` in
fp32, the request's base64 decoded with PIL. Run as a script it starts that server:
`python benchmarks/baseline_score.py CHECKPOINT_DIR PORT` (127.0.0.1, one worker).
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from typing import Any

import torch
from PIL import Image
from transformers import pipeline

_classifier = None


def init() -> None:
    """Build the pipeline once per worker from the checkpoint in `$AZUREML_MODEL_DIR`."""
    global _classifier
    _classifier = pipeline(
        "image-classification",
        model=os.environ["AZUREML_MODEL_DIR"],
        dtype=torch.float32,
        device="cpu",
    )


def run(raw_data: str) -> list[Any]:
    """Classify `{"input_data": {"data": ["<base64 image>", ...]}}`: per image the pipeline's
    `[{"label": ..., "score": ...}, ...]`, best first."""
    if _classifier is None:
        raise RuntimeError("init() has not run")
    values = json.loads(raw_data)["input_data"]["data"]
    images = [Image.open(io.BytesIO(base64.b64decode(v))).convert("RGB") for v in values]
    return _classifier(images)


if __name__ == "__main__":
    from deitkit.serving.server import run_server

    run_server(sys.argv[1], int(sys.argv[2]), entry_script=__file__)
