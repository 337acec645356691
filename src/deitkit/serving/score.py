"""azmlinfsrv entry script: `init()` loads the model once per worker; `run()` answers /score."""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse
from werkzeug.exceptions import HTTPException

from deitkit.errors import ConfigError, DeitkitError
from deitkit.images import PixelBudget, PixelBudgetError
from deitkit.inference import Classifier, FetchUrl, Prediction, load_classifier
from deitkit.inference.packaged import MODEL_DIR_ENV, find_model_dir
from deitkit.inference.scoring import Item, score_items
from deitkit.serving.limits import ENV_NAMES, ServingLimits, serving_limits_from_env
from deitkit.serving.payload import (
    RequestError,
    ScoringRequest,
    format_response,
    parse_request,
)
from deitkit.serving.urls import url_fetcher

log = logging.getLogger("deitkit.serving")

# Parallel URL downloads per request: 64 slow URLs at 10 s each would otherwise outlast the
# worker timeout (300 s) and Azure's request timeout (90 s).
URL_WORKERS = 8
_READ_CHUNK = 1024 * 1024


class Scorer:
    """Answers scoring requests with one loaded Classifier.

    Args:
        classifier: The model, loaded once.
        limits: Request caps; None: `serving_limits_from_env()`.
        fetch_url: Downloads URL inputs; None: `url_fetcher(limits)` (a `UrlFetcher`, or a
            refusal where `limits.allow_urls` is off).
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        limits: ServingLimits | None = None,
        fetch_url: FetchUrl | None = None,
    ):
        self.classifier = classifier
        self.limits = limits if limits is not None else serving_limits_from_env()
        self.fetch_url = fetch_url if fetch_url is not None else url_fetcher(self.limits)
        # gunicorn's threads read requests side by side (deitkit.serving.gunicorn_conf); the
        # model work runs on one thread of its own: one request at a time, so a worker's peak
        # stays one request's worth, and one OpenMP team for torch instead of one per thread.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deitkit-model")

    @classmethod
    def from_environment(cls) -> Scorer:
        """Load the model under `$AZUREML_MODEL_DIR`, with limits from the environment.

        Raises:
            ConfigError: the variable is unset, no model is found, or a limit is invalid.
        """
        root = os.environ.get(MODEL_DIR_ENV, "").strip()
        if not root:
            raise ConfigError(f"{MODEL_DIR_ENV} is not set; it must name the model folder")
        model = find_model_dir(root)
        limits = serving_limits_from_env()
        fetcher = url_fetcher(limits)
        classifier = load_classifier(model, fetch_url=fetcher)
        log.info(
            "deitkit scorer ready: %s, %s (%d labels), at most %d images and %d body bytes",
            model,
            classifier.task.value,
            len(classifier.labels),
            limits.max_images,
            limits.max_body_bytes,
        )
        return cls(classifier, limits=limits, fetch_url=fetcher)

    def handle(self, request: Any) -> AMLResponse:
        """Answer one Flask request: 200 with the predictions, or 4xx with `{"message": ...}`."""
        try:
            if request.method != "POST":
                raise RequestError("use POST with a JSON body", status=405)
            # Read here, in gunicorn's thread: a slow client holds up no one else.
            body = read_json_body(request, self.limits.max_body_bytes)
            answer = self._model_thread.submit(self._answer, body).result()
        except RequestError as err:
            return _error(err.status, str(err))
        except DeitkitError as err:
            return _error(400, str(err))
        return AMLResponse(answer, 200, json_str=True)

    def _answer(self, body: Any) -> Any:
        return self.score(parse_request(body, max_images=self.limits.max_images))

    def score(self, scoring: ScoringRequest) -> Any:
        """Predict every image (the first bad one refuses the request), in the request's shape."""
        return format_response(scoring, self.predict(scoring.images))

    def predict(self, values: list[Any]) -> list[Prediction]:
        """Predict the inputs in order (see `score_batches`); URL downloads all start first.

        Each image is decoded and reduced to the model's size before the next one is decoded,
        and their header pixels together may not pass `limits.max_request_pixels`.

        Raises:
            ImageError: `image <index>: why`, for the first input that cannot be used.
            RequestError: status 413, naming the first image over the request's pixel budget.
        """
        urls = [i for i, value in enumerate(values) if _is_http_url(value)]
        pool = ThreadPoolExecutor(max_workers=min(URL_WORKERS, len(urls))) if urls else None
        downloads: dict[int, Future[bytes]] = {
            i: pool.submit(self.fetch_url, values[i].strip()) for i in urls
        }
        items = (
            Item(f"image {i}", text=value, fetch_url=_downloaded(downloads, i))
            for i, value in enumerate(values)
        )
        budget = PixelBudget(
            self.limits.max_request_pixels, setting=ENV_NAMES["max_request_pixels"]
        )
        try:
            scored = score_items(self.classifier, items, strict=True, budget=budget)
        except PixelBudgetError as err:
            raise RequestError(str(err), status=413) from None
        finally:
            if pool is not None:
                # After an error, answer at once: queued downloads are dropped, running ones end
                # within the URL timeout on their own.
                pool.shutdown(wait=False, cancel_futures=True)
        return self.classifier.predictions([outcome.probs for outcome in scored])


def _downloaded(downloads: dict[int, Future[bytes]], index: int) -> FetchUrl | None:
    """Input `index`'s fetcher: it waits for the download started for it (None if none was).

    Taking the download out of `downloads` frees its bytes once they are decoded.
    """
    if index not in downloads:
        return None
    return lambda _url: downloads.pop(index).result()


def read_json_body(request: Any, max_bytes: int) -> Any:
    """The request's JSON body, refusing a non-JSON type (415) or more than `max_bytes` (413).

    The size is checked from Content-Length before reading and again while reading, so a body
    without (or with a false) Content-Length cannot exceed the cap either.
    """
    mimetype = (request.mimetype or "").lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise RequestError(
            f"Content-Type must be application/json, got {mimetype or 'none'}", status=415
        )
    too_large = f"more than the limit of {max_bytes:,} bytes (DEITKIT_MAX_BODY_BYTES)"
    if request.content_length is not None and request.content_length > max_bytes:
        raise RequestError(f"the body is {request.content_length:,} bytes, {too_large}", 413)
    chunks, size = [], 0
    try:
        while chunk := request.stream.read(min(_READ_CHUNK, max_bytes + 1 - size)):
            size += len(chunk)
            if size > max_bytes:
                raise RequestError(f"the body is {too_large}", 413)
            chunks.append(chunk)
    except HTTPException as err:  # werkzeug: the client sent less than its Content-Length
        raise RequestError(f"the body could not be read: {err.description}") from None
    except (BlockingIOError, TimeoutError):  # the socket's read timeout: the client went quiet
        raise RequestError(
            "the body stopped short of its end: nothing more came within the server's read "
            "timeout (DEITKIT_READ_TIMEOUT)",
            status=408,
        ) from None
    except OSError as err:  # the client reset the connection, for one
        raise RequestError(f"the body could not be read: {err.strerror or err}") from None
    data = b"".join(chunks)
    if not data.strip():
        raise RequestError("the body is empty; expected a JSON object")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError
        raise RequestError(f"the body is not valid JSON: {err}") from None


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip()[:8].lower().startswith(("http://", "https://"))


def _error(status: int, message: str) -> AMLResponse:
    log.info("refused with %d: %s", status, message)
    return AMLResponse({"message": message}, status, json_str=True)


_scorer: Scorer | None = None


def init() -> None:
    """Load the model once (azmlinfsrv calls this in each worker before any request)."""
    global _scorer
    _log_through_the_server()
    _scorer = Scorer.from_environment()


def _log_through_the_server() -> None:
    """Send deitkit's INFO lines (the engine served and why, the scorer's limits) to the log.

    azmlinfsrv's logging config gives handlers to its own loggers only (the root logger has
    none, so INFO from `deitkit.*` would be dropped), and, applied by `dictConfig`, it disables
    every logger that existed before it, warnings included: `deitkit serve` has imported
    deitkit by then. Outside the server (tests calling `init()` directly) nothing changes.
    """
    deitkit_log, server_log = logging.getLogger("deitkit"), logging.getLogger("azmlinfsrv")
    if deitkit_log.handlers or not server_log.handlers:
        return
    for name, existing in logging.root.manager.loggerDict.items():
        if (name == "deitkit" or name.startswith("deitkit.")) and isinstance(
            existing, logging.Logger
        ):
            existing.disabled = False
    for handler in server_log.handlers:
        deitkit_log.addHandler(handler)
    deitkit_log.setLevel(logging.INFO)
    deitkit_log.propagate = False


@rawhttp
def run(request: Any) -> AMLResponse:
    """Answer one request to /score (azmlinfsrv passes the Flask request: `@rawhttp`)."""
    if _scorer is None:
        raise RuntimeError("init() has not run")
    return _scorer.handle(request)


__all__ = ["Scorer", "find_model_dir", "init", "read_json_body", "run"]
