"""Scoring request bodies (Azure's `input_data`, MLflow's four forms) and the answer each gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from deitkit.errors import DeitkitError
from deitkit.inference import Prediction, check_threshold, check_top_k
from deitkit.inference.packaged import INPUT_COLUMN

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
FORMAT_KEYS = ("input_data", *MLFLOW_KEYS)
PARAM_KEYS = ("threshold", "top_k", "format")
# `params.format`: answer each image in the records form Azure's deployment of a catalog model
# gives (its pipeline's DataFrame as pandas' orient="records"), which Azure's notebooks parse.
ANSWER_FORMATS = ("records",)
# transformers' ImageClassificationPipeline answers the top 5 unless told otherwise.
RECORDS_TOP_K = 5


class RequestError(DeitkitError):
    """A request the scorer refuses, with the HTTP status that says why (400, 413, 415)."""

    def __init__(self, message: str, status: int = 400):
        self.status = status
        super().__init__(message)


class Shape(StrEnum):
    """Which answer a request gets, chosen by the form it came in."""

    TABLE = "table"  # input_data {columns, index, data} → [{"probs", "labels"}, ...]
    RANKED = "ranked"  # input_data [...] → [[{"label", "score"}, ...], ...], best first
    MLFLOW = "mlflow"  # MLflow's forms → {"predictions": [{"probs", "labels", "predicted"}]}


@dataclass(frozen=True)
class ScoringRequest:
    """What to score and how to answer.

    Attributes:
        images: The image values as sent (base64 text or URLs), in request order.
        shape: The answer's form.
        threshold: `params.threshold`, or None for the model's own.
        top_k: `params.top_k`, or None.
        format: `params.format` (`records`), or None for the shape's own answer.
    """

    images: list[Any]
    shape: Shape
    threshold: float | None = None
    top_k: int | None = None
    format: str | None = None


def parse_request(body: Any, *, max_images: int) -> ScoringRequest:
    """Read a decoded JSON body into a ScoringRequest.

    Raises:
        RequestError: the body has no known form, a form is malformed, `params` is invalid, or
            it holds no images or more than `max_images` (status 400).
    """
    if not isinstance(body, dict):
        raise RequestError(
            f"the body must be a JSON object with one of the keys {_names(FORMAT_KEYS)}; "
            f"got a JSON {_json_type(body)}"
        )
    unknown = [key for key in body if key not in (*FORMAT_KEYS, "params")]
    if unknown:
        raise RequestError(
            f"unknown key {unknown[0]!r} in the body; expected one of {_names(FORMAT_KEYS)} "
            "and optionally 'params'"
        )
    forms = [key for key in FORMAT_KEYS if key in body]
    if len(forms) != 1:
        found = f"got {_names(forms)}" if forms else "got none"
        raise RequestError(f"the body must have exactly one of {_names(FORMAT_KEYS)}; {found}")
    form = forms[0]
    threshold, top_k, answer_format = _params(body.get("params"))
    value = body[form]
    if form == "input_data" and isinstance(value, list):
        images, shape = value, Shape.RANKED
    elif form in ("input_data", "dataframe_split"):
        images = _split(value, form)
        shape = Shape.TABLE if form == "input_data" else Shape.MLFLOW
    elif form == "dataframe_records":
        images, shape = _records(value, form), Shape.MLFLOW
    else:
        images, shape = _instances(value, form), Shape.MLFLOW
    if not images:
        raise RequestError(f"{form} holds no images; send at least one")
    if len(images) > max_images:
        raise RequestError(
            f"{form} holds {len(images)} images, more than the limit of {max_images} per request "
            "(DEITKIT_MAX_IMAGES); split them over several requests"
        )
    return ScoringRequest(images, shape, threshold, top_k, answer_format)


def format_response(request: ScoringRequest, predictions: Sequence[Prediction]) -> Any:
    """The JSON-ready answer for `predictions` (one per image) in the request's shape.

    `params` change only the labels chosen: the ranked lists (`top_k` cuts them; `threshold`,
    for multilabel models, drops the labels under it, as the model's per-label thresholds do
    when it has them and the request gives none) and MLflow's `predicted`. `probs` and
    `labels` are always complete and in label order. `format: records` answers every image with
    `{"0": {"label", "score"}, "1": ...}`, best first (top 5 unless `top_k`), in a list, or in
    `{"predictions": [...]}` for MLflow's forms, as Azure's and MLflow's servers answer for a
    model catalog (transformers) model.
    """
    if request.format == "records":
        records = [_record(prediction, request) for prediction in predictions]
        return {"predictions": records} if request.shape is Shape.MLFLOW else records
    if request.shape is Shape.TABLE:
        return [prediction.to_dict() for prediction in predictions]
    if request.shape is Shape.RANKED:
        return [
            _ranked(prediction, top_k=request.top_k, threshold=request.threshold)
            for prediction in predictions
        ]
    return {
        "predictions": [
            {
                **prediction.to_dict(),
                "predicted": prediction.predicted(threshold=request.threshold, top_k=request.top_k),
            }
            for prediction in predictions
        ]
    }


def _ranked(
    prediction: Prediction, *, top_k: int | None, threshold: float | None
) -> list[dict[str, Any]]:
    """All labels best first (`top_k` of them); for a multilabel model deciding by a threshold
    (the request's, or else its own per-label ones) only the labels `predicted` chooses."""
    if prediction.task.is_multilabel and (
        threshold is not None or prediction.thresholds is not None
    ):
        scores = dict(zip(prediction.labels, prediction.probs, strict=True))
        chosen = prediction.predicted(threshold=threshold, top_k=top_k)
        return [{"label": label, "score": scores[label]} for label in chosen]
    return [{"label": label, "score": score} for label, score in prediction.top_k(top_k)]


def _record(prediction: Prediction, request: ScoringRequest) -> dict[str, dict[str, Any]]:
    """`{"0": {"label", "score"}, "1": ...}`: one row of the pipeline's DataFrame, as records."""
    top_k = request.top_k if request.top_k is not None else RECORDS_TOP_K
    ranked = _ranked(prediction, top_k=top_k, threshold=request.threshold)
    return {str(rank): entry for rank, entry in enumerate(ranked)}


def _params(params: Any) -> tuple[float | None, int | None, str | None]:
    if params is None:
        return None, None, None
    if not isinstance(params, dict):
        raise RequestError(f"params must be a JSON object, got a JSON {_json_type(params)}")
    unknown = [key for key in params if key not in PARAM_KEYS]
    if unknown:
        raise RequestError(f"unknown parameter {unknown[0]!r}; supported: {_names(PARAM_KEYS)}")
    threshold, top_k = params.get("threshold"), params.get("top_k")
    try:
        threshold = None if threshold is None else check_threshold(threshold, name="threshold")
        top_k = None if top_k is None else check_top_k(top_k, name="top_k")
    except DeitkitError as err:
        raise RequestError(f"params: {err}") from None
    answer_format = params.get("format")
    if answer_format is not None and answer_format not in ANSWER_FORMATS:
        raise RequestError(
            f"params: format {answer_format!r} is not supported; expected one of "
            f"{_names(ANSWER_FORMATS)} (or no format for the request form's own answer)"
        )
    return threshold, top_k, answer_format


def _split(value: Any, form: str) -> list[Any]:
    """`{"columns": [...], "index": [...], "data": [...]}`: rows are lists, or bare values."""
    if not isinstance(value, dict):
        raise RequestError(
            f"{form} must be a JSON object with 'columns' and 'data' (or, for input_data, a "
            f"list of images); got a JSON {_json_type(value)}"
        )
    if "data" not in value:
        raise RequestError(
            f"{form} has no 'data'; expected {{'columns': ['image'], 'data': [...]}}"
        )
    data = value["data"]
    if not isinstance(data, list):
        raise RequestError(f"{form}.data must be a list, got a JSON {_json_type(data)}")
    columns = value.get("columns", [INPUT_COLUMN])
    if not isinstance(columns, list) or INPUT_COLUMN not in columns:
        raise RequestError(f"{form}.columns must list {INPUT_COLUMN!r}; got {columns!r}")
    index = value.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        count = len(index) if isinstance(index, list) else _json_type(index)
        raise RequestError(
            f"{form}.index must be a list as long as data ({len(data)} rows); got {count}"
        )
    position = columns.index(INPUT_COLUMN)
    images = []
    for row, item in enumerate(data):
        if isinstance(item, list):
            if len(item) != len(columns):
                raise RequestError(
                    f"image {row}: {form}.data row {row} has {len(item)} values for "
                    f"{len(columns)} columns"
                )
            images.append(item[position])
        elif len(columns) == 1:
            images.append(item)
        else:
            raise RequestError(
                f"image {row}: {form}.data row {row} must be a list of {len(columns)} values"
            )
    return images


def _records(value: Any, form: str) -> list[Any]:
    """`[{"image": ...}, ...]`."""
    if not isinstance(value, list):
        raise RequestError(
            f"{form} must be a list of objects like {{{INPUT_COLUMN!r}: ...}}; "
            f"got a JSON {_json_type(value)}"
        )
    images = []
    for row, item in enumerate(value):
        if not isinstance(item, dict) or INPUT_COLUMN not in item:
            raise RequestError(
                f"image {row}: {form}[{row}] must be an object with {INPUT_COLUMN!r}"
            )
        images.append(item[INPUT_COLUMN])
    return images


def _instances(value: Any, form: str) -> list[Any]:
    """`["<img>", ...]`, `[{"image": ...}, ...]` or `{"image": [...]}`."""
    if isinstance(value, dict):
        if set(value) != {INPUT_COLUMN} or not isinstance(value[INPUT_COLUMN], list):
            raise RequestError(
                f"{form} as an object must be {{{INPUT_COLUMN!r}: [...]}}; got keys {list(value)}"
            )
        return list(value[INPUT_COLUMN])
    if not isinstance(value, list):
        raise RequestError(f"{form} must be a list of images, got a JSON {_json_type(value)}")
    if any(isinstance(item, dict) for item in value):
        return _records(value, form)
    return list(value)


def _names(keys: Sequence[str]) -> str:
    return ", ".join(repr(key) for key in keys)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
