"""The scorer in-process: body reading, status codes, URL inputs, model lookup, init()/run()."""

from __future__ import annotations

import base64
import errno
import importlib.util
import io
import json
import threading
import time
from pathlib import Path

import flask
import numpy as np
import pytest
from helpers import save_tiny_checkpoint
from PIL import Image
from werkzeug.exceptions import ClientDisconnected

from deitkit.errors import ConfigError, ImageError
from deitkit.inference import Classifier
from deitkit.inference.packaged import find_model_dir
from deitkit.serving import score as score_module
from deitkit.serving.limits import ServingLimits
from deitkit.serving.score import Scorer

LABELS = ["can", "carton", "milk_bottle"]
ENDPOINT_SCRIPT = Path(__file__).parents[1] / "endpoints" / "online" / "score.py"


def image_base64(colour=(200, 30, 30), size=(20, 20), fmt="PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


RED, BLUE = image_base64((220, 30, 30)), image_base64((20, 40, 220), fmt="JPEG")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("score") / "model", labels=LABELS)


@pytest.fixture(scope="module")
def classifier(checkpoint) -> Classifier:
    return Classifier.from_pretrained(checkpoint, dtype="float32")


def post(handler, body, content_type="application/json", method="POST"):
    """Call `handler` (Scorer.handle or run) with a Flask request; (status, decoded JSON)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    app = flask.Flask(__name__)
    with app.test_request_context("/score", method=method, data=data, content_type=content_type):
        response = handler(flask.request)
    return response.status_code, json.loads(response.get_data())


class StreamRequest:
    """A request without Content-Length whose body is `stream` (a chunked upload)."""

    method = "POST"
    mimetype = "application/json"
    content_length = None

    def __init__(self, stream):
        self.stream = stream


def test_a_good_request_gets_the_models_probabilities(classifier):
    status, answer = post(Scorer(classifier).handle, {"input_data": [RED, BLUE]})
    assert status == 200
    expected = classifier.predict_inputs([RED, BLUE])
    for ranked, prediction in zip(answer, expected, strict=True):
        assert [item["label"] for item in ranked] == [label for label, _ in prediction.top_k()]
        np.testing.assert_allclose(
            [item["score"] for item in ranked], [p for _, p in prediction.top_k()], atol=1e-7
        )


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_non_json_content_types_get_415(classifier, content_type):
    status, answer = post(Scorer(classifier).handle, {"input_data": [RED]}, content_type)
    assert status == 415 and "Content-Type must be application/json" in answer["message"]


def test_json_subtypes_are_accepted(classifier):
    status, _ = post(Scorer(classifier).handle, {"input_data": [RED]}, "application/vnd.api+json")
    assert status == 200


def test_a_declared_body_over_the_cap_gets_413_unread(classifier):
    scorer = Scorer(classifier, limits=ServingLimits(max_body_bytes=100))
    status, answer = post(scorer.handle, {"input_data": [RED]})
    assert status == 413
    assert "more than the limit of 100 bytes (DEITKIT_MAX_BODY_BYTES)" in answer["message"]


def test_images_over_the_requests_pixel_budget_get_413_naming_the_first_one(classifier):
    # RED is 20x20: two fit in 800 pixels, the third passes them.
    scorer = Scorer(classifier, limits=ServingLimits(max_request_pixels=800))
    status, answer = post(scorer.handle, {"input_data": [RED, RED, RED, "%%%"]})
    assert status == 413
    assert answer["message"] == (
        "image 2: with this 20x20 image the request's images hold 1,200 pixels, more than the "
        "limit of 800 pixels per request (DEITKIT_MAX_REQUEST_PIXELS); send fewer or smaller "
        "images per request"
    )
    status, _ = post(scorer.handle, {"input_data": [RED, RED]})  # each request has its own
    assert status == 200


def test_a_body_without_content_length_is_capped_while_read(classifier):
    scorer = Scorer(classifier, limits=ServingLimits(max_body_bytes=100))
    small = json.dumps({"input_data": [RED]}).encode()
    stream = io.BytesIO(small + b" " * 1000)
    response = scorer.handle(StreamRequest(stream))
    assert response.status_code == 413
    assert stream.tell() <= 101  # stopped one byte past the cap
    roomy = Scorer(classifier, limits=ServingLimits(max_body_bytes=len(small)))
    assert roomy.handle(StreamRequest(io.BytesIO(small))).status_code == 200


def test_a_client_that_disconnects_mid_body_gets_400(classifier):
    class Broken:
        def read(self, size):
            raise ClientDisconnected()

    response = Scorer(classifier).handle(StreamRequest(Broken()))
    assert response.status_code == 400
    assert "could not be read" in json.loads(response.get_data())["message"]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "the body is empty"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"input_data": ["%%%"]}', "image 0: the text is not valid base64"),
    ],
)
def test_bad_bodies_get_400_with_a_message(classifier, body, message):
    status, answer = post(Scorer(classifier).handle, body)
    assert status == 400 and message in answer["message"]
    assert "Traceback" not in answer["message"]


def test_get_gets_405(classifier):
    status, answer = post(Scorer(classifier).handle, b"", method="GET")
    assert status == 405 and "use POST" in answer["message"]


def test_a_mix_of_good_and_bad_images_is_refused_naming_the_first_bad_one(classifier):
    bad_image = base64.b64encode(b"not an image at all").decode()
    status, answer = post(Scorer(classifier).handle, {"input_data": [RED, BLUE, bad_image, "%%%"]})
    assert status == 400 and answer["message"].startswith("image 2: ")


def test_url_inputs_are_fetched_and_decoded_in_request_order(classifier):
    png = base64.b64decode(RED)
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        if url.endswith("/red.png"):
            return png
        raise ImageError(f"{url} answered HTTP 404")

    scorer = Scorer(classifier, fetch_url=fetch)
    url = "https://images.example.test/red.png"
    status, answer = post(scorer.handle, {"input_data": {"data": [BLUE, f"  {url}\n"]}})
    assert status == 200 and fetched == [url]
    expected = classifier.predict_inputs([BLUE, RED])
    np.testing.assert_allclose(answer[1]["probs"], expected[1].probs, atol=1e-7)

    status, answer = post(
        scorer.handle, {"input_data": [url, "https://images.example.test/gone.png", "%%%"]}
    )
    assert status == 400
    assert answer["message"] == "image 1: https://images.example.test/gone.png answered HTTP 404"


def test_url_inputs_turned_off_by_the_operator_get_400_naming_the_switch(classifier):
    scorer = Scorer(classifier, limits=ServingLimits(allow_urls=False))
    status, answer = post(scorer.handle, {"input_data": [RED, "https://images.example.test/a.png"]})
    assert status == 400
    assert answer["message"] == (
        "image 1: URL inputs are turned off by the operator (DEITKIT_ALLOW_URLS=false); send "
        "base64 image data instead of https://images.example.test/a.png"
    )
    assert post(scorer.handle, {"input_data": [RED, BLUE]})[0] == 200


@pytest.mark.parametrize(
    "error, status, message",
    [
        (BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"), 408,
         "the body stopped short of its end: nothing more came within the server's read "
         "timeout (DEITKIT_READ_TIMEOUT)"),
        (TimeoutError("timed out"), 408, "read timeout (DEITKIT_READ_TIMEOUT)"),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), 400,
         "the body could not be read: Connection reset by peer"),
    ],
    ids=["SO_RCVTIMEO", "timeout", "reset"],
)  # fmt: skip
def test_a_client_that_stops_sending_mid_body_gets_a_4xx(classifier, error, status, message):
    class Stalled:
        def __init__(self):
            self.chunks = [b'{"in']

        def read(self, size):
            if self.chunks:
                return self.chunks.pop()
            raise error

    response = Scorer(classifier).handle(StreamRequest(Stalled()))
    assert response.status_code == status
    assert message in json.loads(response.get_data())["message"]


def test_requests_are_read_side_by_side_but_scored_one_at_a_time(classifier, monkeypatch):
    scorer = Scorer(classifier)
    scoring, most = [0], [0]
    lock = threading.Lock()
    real_score = scorer.score

    def counting_score(request):
        with lock:
            scoring[0] += 1
            most[0] = max(most[0], scoring[0])
        try:
            time.sleep(0.05)  # widens the window in which a second scoring would overlap
            return real_score(request)
        finally:
            with lock:
                scoring[0] -= 1

    monkeypatch.setattr(scorer, "score", counting_score)
    body = json.dumps({"input_data": [RED, BLUE]}).encode()

    class Slow:
        """A body that arrives only when the test says so."""

        def __init__(self):
            self.go, self.data = threading.Event(), io.BytesIO(body)

        def read(self, size):
            assert self.go.wait(30)
            return self.data.read(size)

    slow = Slow()
    statuses: list[int | BaseException] = []

    def answer(stream) -> None:
        try:
            statuses.append(scorer.handle(StreamRequest(stream)).status_code)
        except BaseException as err:  # reported by the assertion below, not lost in a thread
            statuses.append(err)

    reader = threading.Thread(target=answer, args=(slow,))
    reader.start()
    # While one request waits for its body, another is answered: reading holds no lock.
    assert scorer.handle(StreamRequest(io.BytesIO(body))).status_code == 200
    slow.go.set()
    others = [threading.Thread(target=answer, args=(io.BytesIO(body),)) for _ in range(4)]
    for thread in others:
        thread.start()
    for thread in [reader, *others]:
        thread.join(60)
    assert statuses == [200] * 5
    assert most[0] == 1  # the model never ran two requests at once


def test_params_reach_the_answer(tiny_checkpoint):
    config_file = tiny_checkpoint("vit", labels=LABELS) / "config.json"
    config = json.loads(config_file.read_text())
    config["problem_type"] = "multi_label_classification"
    config_file.write_text(json.dumps(config))
    multilabel = Classifier.from_pretrained(config_file.parent, dtype="float32")
    scorer = Scorer(multilabel)

    status, everything = post(scorer.handle, {"input_data": [RED], "params": {"threshold": 0.0}})
    assert status == 200 and len(everything[0]) == 3
    scores = [item["score"] for item in everything[0]]
    assert scores == sorted(scores, reverse=True)
    _, nothing = post(scorer.handle, {"input_data": [RED], "params": {"threshold": 1.0}})
    assert nothing == [[]]
    _, mlflow = post(scorer.handle, {"instances": [RED], "params": {"threshold": 0.0, "top_k": 2}})
    assert len(mlflow["predictions"][0]["predicted"]) == 2
    status, answer = post(scorer.handle, {"input_data": [RED], "params": {"top_k": "2"}})
    assert status == 400 and "top_k must be an integer" in answer["message"]


def _mark(folder: Path, marker: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / marker).write_text("{}")
    return folder


def test_find_model_follows_azures_layouts(tmp_path):
    assert find_model_dir(_mark(tmp_path / "a", "MLmodel")) == tmp_path / "a"
    # Azure: $AZUREML_MODEL_DIR/<model folder>/MLmodel, possibly one more level down.
    nested = _mark(tmp_path / "b" / "deit-model", "MLmodel")
    assert find_model_dir(tmp_path / "b") == nested
    deeper = _mark(tmp_path / "c" / "m" / "1", "MLmodel")
    assert find_model_dir(tmp_path / "c") == deeper
    checkpoint = _mark(tmp_path / "d" / "ckpt", "config.json")
    assert find_model_dir(tmp_path / "d") == checkpoint
    # deitkit finetune's output: the packaged model wins over the checkpoint beside it.
    _mark(tmp_path / "e" / "model", "config.json")
    packaged = _mark(tmp_path / "e" / "mlflow_model", "MLmodel")
    assert find_model_dir(tmp_path / "e") == packaged


def test_find_model_refuses_nothing_or_several(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        find_model_dir(tmp_path / "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"no packaged model \(MLmodel\) or checkpoint"):
        find_model_dir(tmp_path / "empty")
    _mark(tmp_path / "two" / "x", "MLmodel")
    _mark(tmp_path / "two" / "y", "MLmodel")
    with pytest.raises(ConfigError, match="holds several models"):
        find_model_dir(tmp_path / "two")


def test_from_environment_needs_the_model_dir(monkeypatch):
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    with pytest.raises(ConfigError, match="AZUREML_MODEL_DIR is not set"):
        Scorer.from_environment()


def test_from_environment_refuses_an_unknown_url_switch_before_loading(checkpoint, monkeypatch):
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(checkpoint))
    monkeypatch.setenv("DEITKIT_ALLOW_URLS", "sometimes")
    with pytest.raises(ConfigError, match=r"^DEITKIT_ALLOW_URLS='sometimes' is invalid"):
        Scorer.from_environment()
    monkeypatch.setenv("DEITKIT_ALLOW_URLS", "no")
    scorer = Scorer.from_environment()
    assert scorer.limits.allow_urls is False
    assert scorer.fetch_url is scorer.classifier.fetch_url  # the same refusal on every path
    status, answer = post(scorer.handle, {"input_data": ["http://images.example.test/a.png"]})
    assert status == 400 and "turned off by the operator" in answer["message"]


def test_the_endpoint_script_loads_the_model_once_and_serves(checkpoint, tmp_path, monkeypatch):
    from azureml_inference_server_http.api import aml_request

    # Azure's layout: the registered folder one level under AZUREML_MODEL_DIR.
    root = tmp_path / "azureml-models" / "deit" / "1"
    root.mkdir(parents=True)
    (root / "deit-model").symlink_to(checkpoint, target_is_directory=True)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(root))
    monkeypatch.setenv("DEITKIT_MAX_IMAGES", "2")
    monkeypatch.setattr(score_module, "_scorer", None)
    # Loaded the way azmlinfsrv loads an entry script.
    spec = importlib.util.spec_from_file_location("entry_module", ENDPOINT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert aml_request._rawHttpRequested  # run() takes the Flask request: @rawhttp

    module.init()
    loaded = score_module._scorer
    assert loaded.classifier.labels == LABELS and loaded.limits.max_images == 2
    status, answer = post(module.run, {"input_data": {"columns": ["image"], "data": [RED]}})
    assert status == 200 and answer[0]["labels"] == LABELS
    status, answer = post(module.run, {"input_data": [RED] * 3})
    assert status == 400 and "more than the limit of 2" in answer["message"]
    assert score_module._scorer is loaded  # no reload per request


@pytest.mark.parametrize("script", ["online/score.py", "batch/driver.py"])
def test_both_endpoint_scripts_find_the_nearest_packaged_deitkit(script, tmp_path, monkeypatch):
    path = Path(__file__).parents[1] / "endpoints" / script
    spec = importlib.util.spec_from_file_location("entry_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # deitkit is installed here: nothing is searched
    root = tmp_path / "azureml-models"
    # v1's <name>/<version>/<folder> layout, through a symlinked mount, beside a deeper copy.
    model = _mark(tmp_path / "store" / "mlflow_model" / "code" / "deitkit", "__init__.py")
    (root / "deit" / "1").mkdir(parents=True)
    (root / "deit" / "1" / "mlflow_model").symlink_to(model.parents[1], target_is_directory=True)
    _mark(root / "deit" / "1" / "mlflow_model" / "old" / "x" / "code" / "deitkit", "__init__.py")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(root))

    assert module._packaged_code() == str(root / "deit" / "1" / "mlflow_model" / "code")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path / "missing"))
    with pytest.raises(ModuleNotFoundError, match="neither installed nor packaged"):
        module._packaged_code()
