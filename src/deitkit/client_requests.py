"""Client side of the online endpoint: /score request bodies built from image files, every form."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deitkit.errors import ConfigError

# The model card's split form first: what Azure's samples send.
FORMS = ("input_data", "list", "dataframe_split", "dataframe_records")


def encode_image(path: str | Path) -> str:
    """The file's bytes as `base64.encodebytes` writes them (76-character lines), as the seed."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the image: {err.strerror}") from None
    return base64.encodebytes(data).decode("ascii")


def request_body(
    images: Sequence[str | Path], *, form: str = "input_data", params: dict | None = None
) -> dict[str, Any]:
    """A JSON-ready /score body for `images`.

    Args:
        images: Image files, sent in order.
        form: `input_data` (the model card's `{"columns", "index", "data"}` split form),
            `list` (`{"input_data": [...]}`, answered with ranked labels), or MLflow's
            `dataframe_split` / `dataframe_records`.
        params: Optional `{"threshold": ..., "top_k": ...}`.

    Raises:
        ConfigError: no image, an unreadable file, or an unknown form.
    """
    if not images:
        raise ConfigError("a request needs at least one image")
    if form not in FORMS:
        raise ConfigError(f"unknown request form {form!r}; choose one of {', '.join(FORMS)}")
    data = [encode_image(path) for path in images]
    if form == "input_data":
        body: dict[str, Any] = {
            "input_data": {"columns": ["image"], "index": list(range(len(data))), "data": data}
        }
    elif form == "list":
        body = {"input_data": data}
    elif form == "dataframe_split":
        body = {"dataframe_split": {"columns": ["image"], "data": [[d] for d in data]}}
    else:
        body = {"dataframe_records": [{"image": d} for d in data]}
    if params:
        body["params"] = dict(params)
    return body
