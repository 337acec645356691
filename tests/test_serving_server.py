"""The real server (azmlinfsrv + deitkit's scorer) and MLflow's own, on free loopback ports."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import sysconfig
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from helpers import (
    save_catalog_model,
    save_hftransformersv2_model,
    save_text_classification_model,
    save_tiny_checkpoint,
)
from PIL import Image

from deitkit.packaging import package_model
from deitkit.serving import server as server_module
from deitkit.serving.server import LocalServer, free_port
from deitkit.serving.server_settings import GUNICORN_CMD_ARGS

pytestmark = pytest.mark.slow  # each module fixture starts a server (about 10-20 s)

LABELS = ["can", "carton", "milk_bottle"]
MAX_IMAGES = 4
MAX_BODY_BYTES = 300_000
JSON = {"Content-Type": "application/json"}
ENDPOINT_SCRIPT = Path(__file__).parents[1] / "endpoints" / "online" / "score.py"


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def photo(seed: int, size=(40, 30)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` pixels, with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def animated_gif() -> bytes:
    frames = [Image.new("P", (12, 12), colour) for colour in (1, 2, 3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


# Seed-style images: JPEGs encoded with base64.encodebytes (line breaks every 76 characters).
JPEG_A = base64.encodebytes(encode(photo(1), "JPEG")).decode("ascii")
JPEG_B = base64.encodebytes(encode(photo(2, (64, 48)), "JPEG")).decode("ascii")
GOOD = {"input_data": [b64(encode(photo(3), "PNG"))]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serving")
    checkpoint = save_tiny_checkpoint(root / "checkpoint", labels=LABELS)
    return package_model(checkpoint, root / "mlflow_model")


@pytest.fixture(scope="module")
def server(model_dir):
    env = {"DEITKIT_MAX_IMAGES": str(MAX_IMAGES), "DEITKIT_MAX_BODY_BYTES": str(MAX_BODY_BYTES)}
    with LocalServer(model_dir, env=env) as running:
        yield running
        assert running.process.poll() is None, running.output()  # it stayed up throughout


@pytest.fixture(scope="module")
def pyfunc(model_dir):
    import mlflow

    path = list(sys.path)
    try:
        return mlflow.pyfunc.load_model(str(model_dir))
    finally:
        sys.path[:] = path  # load_model prepends the package's code/ folder


def score(server, body, headers=JSON) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(server.url + "/score", data=data, headers=headers, timeout=60)


def test_the_log_says_which_engine_serves_and_why(server):
    assert re.search(
        r"deitkit\.inference\.classifier - loaded .*, serving with \S+: ", server.output()
    )
    assert "deitkit.serving - deitkit scorer ready" in server.output()


def test_liveness_answers_healthy(server):
    response = requests.get(server.url + "/", timeout=10)
    assert response.status_code == 200 and response.text == "Healthy"


def test_the_seed_request_gets_the_seed_answer(server, pyfunc):
    body = {"input_data": {"columns": ["image"], "index": [0, 1], "data": [JPEG_A, JPEG_B]}}
    response = score(server, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert isinstance(answer, list) and len(answer) == 2
    for item in answer:
        assert set(item) == {"probs", "labels"} and item["labels"] == LABELS
        assert len(item["probs"]) == 3 and sum(item["probs"]) == pytest.approx(1.0, abs=1e-5)
    expected = pyfunc.predict(pd.DataFrame({"image": [JPEG_A, JPEG_B]}))
    np.testing.assert_allclose(
        [item["probs"] for item in answer], np.stack(expected["probs"].to_list()), atol=1e-5
    )


def test_the_list_form_ranks_every_label(server, pyfunc):
    response = score(server, {"input_data": [JPEG_A, JPEG_B]})
    assert response.status_code == 200, response.text
    expected = pyfunc.predict(pd.DataFrame({"image": [JPEG_A, JPEG_B]}))
    for ranked, probs in zip(response.json(), expected["probs"], strict=True):
        assert all(set(item) == {"label", "score"} for item in ranked)
        scores = [item["score"] for item in ranked]
        assert scores == sorted(scores, reverse=True)
        by_label = {item["label"]: item["score"] for item in ranked}
        assert sorted(by_label) == LABELS
        np.testing.assert_allclose([by_label[label] for label in LABELS], probs, atol=1e-5)

    top = score(server, {"input_data": [JPEG_A], "params": {"top_k": 2}}).json()
    assert top == [response.json()[0][:2]]


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["image"], "index": [0, 1], "data": [[JPEG_A], [JPEG_B]]}},
        {"dataframe_records": [{"image": JPEG_A}, {"image": JPEG_B}]},
        {"instances": [JPEG_A, JPEG_B]},
        {"inputs": {"image": [JPEG_A, JPEG_B]}},
    ],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_mlflow_forms_answer_as_mlflow_does(server, pyfunc, body):
    response = score(server, {**body, "params": {"top_k": 2}})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = pyfunc.predict(pd.DataFrame({"image": [JPEG_A, JPEG_B]}), params={"top_k": 2})
    for item, row in zip(predictions, expected.itertuples(), strict=True):
        assert set(item) == {"probs", "labels", "predicted"} and item["labels"] == LABELS
        np.testing.assert_allclose(item["probs"], row.probs, atol=1e-5)
        assert item["predicted"] == list(row.predicted)


@pytest.mark.parametrize(
    "name, value",
    [
        ("CMYK JPEG", b64(encode(Image.new("CMYK", (20, 20), (0, 80, 160, 10)), "JPEG"))),
        (
            "16-bit PNG",
            b64(
                encode(
                    Image.fromarray(np.arange(400, dtype=np.uint16).reshape(20, 20) * 150), "PNG"
                )
            ),
        ),
        ("RGBA PNG", b64(encode(Image.new("RGBA", (20, 20), (200, 10, 10, 90)), "PNG"))),
        ("animated GIF", b64(animated_gif())),
        ("data URL", "data:image/jpeg;base64," + JPEG_A.replace("\n", "")),
        (
            "URL-safe base64 without padding",
            base64.urlsafe_b64encode(encode(photo(4), "PNG")).decode().rstrip("="),
        ),
    ],
)
def test_unusual_but_valid_images_are_scored(server, name, value):
    response = score(server, {"input_data": {"columns": ["image"], "data": [value]}})
    assert response.status_code == 200, f"{name}: {response.text}"
    assert sum(response.json()[0]["probs"]) == pytest.approx(1.0, abs=1e-5)


def _truncated_jpeg() -> str:
    data = encode(photo(5, (64, 64)), "JPEG")
    return b64(data[: len(data) // 2])


BAD_REQUESTS = [
    ("invalid JSON", b'{"input_data": [', JSON, 400, "not valid JSON"),
    (
        "wrong content type",
        json.dumps(GOOD).encode(),
        {"Content-Type": "text/plain"},
        415,
        "Content-Type must be application/json",
    ),
    ("no content type", json.dumps(GOOD).encode(), {}, 415, "Content-Type"),
    ("no input_data", {"data": ["x"]}, JSON, 400, "unknown key 'data'"),
    ("empty object", {}, JSON, 400, "exactly one of"),
    ("empty list", {"input_data": []}, JSON, 400, "holds no images"),
    (
        "too many images",
        {"input_data": GOOD["input_data"] * (MAX_IMAGES + 1)},
        JSON,
        400,
        f"more than the limit of {MAX_IMAGES} per request",
    ),
    (
        "not base64",
        {"input_data": ["this is not base64!"]},
        JSON,
        400,
        "image 0: the text is not valid base64",
    ),
    (
        "base64 of text",
        {"input_data": [b64(b"hello, I am not an image" * 4)]},
        JSON,
        400,
        "image 0: the file is text, not an image",
    ),
    (
        "base64 of random bytes",
        {"input_data": [b64(bytes(range(256)) * 4)]},
        JSON,
        400,
        "image 0: not a supported image",
    ),
    (
        "truncated JPEG",
        {"input_data": [_truncated_jpeg()]},
        JSON,
        400,
        "image 0: the image data is truncated or corrupt",
    ),
    (
        "1x1",
        {"input_data": [b64(encode(Image.new("RGB", (1, 1)), "PNG"))]},
        JSON,
        400,
        "image 0: the image is 1x1 pixels",
    ),
    (
        "1xN",
        {"input_data": [b64(encode(Image.new("RGB", (1, 50)), "PNG"))]},
        JSON,
        400,
        "1x50 pixels; each side must be at least 2",
    ),
    (
        "Nx1",
        {"input_data": [b64(encode(Image.new("RGB", (50, 1)), "PNG"))]},
        JSON,
        400,
        "50x1 pixels",
    ),
    (
        "30000x30000 header",
        {"input_data": [b64(png_header(30000, 30000))]},
        JSON,
        400,
        "image 0: the image has more than the limit of 64,000,000 pixels",
    ),
    (
        "URL to 127.0.0.1",
        {"input_data": ["http://127.0.0.1:1/a.png"]},
        JSON,
        400,
        "127.0.0.1 is a loopback address",
    ),
    (
        "URL to localhost",
        {"input_data": ["http://localhost/a.png"]},
        JSON,
        400,
        "127.0.0.1 is a loopback address",
    ),
    (
        "URL to 10.0.0.1",
        {"input_data": ["http://10.0.0.1/a.png"]},
        JSON,
        400,
        "10.0.0.1 is a private address",
    ),
    (
        "URL to the metadata service",
        {"input_data": ["http://169.254.169.254/metadata/instance?api-version=2021-02-01"]},
        JSON,
        400,
        "169.254.169.254 is a cloud metadata address",
    ),
    ("file URL", {"input_data": ["file:///etc/passwd"]}, JSON, 400, "file:// URLs are not"),
    ("ftp URL", {"input_data": ["ftp://example.com/a.png"]}, JSON, 400, "ftp:// URLs are not"),
    ("bad params", {**GOOD, "params": {"top_k": 0}}, JSON, 400, "top_k must be an integer"),
    ("non-string image", {"input_data": [42]}, JSON, 400, "image 0: expected a string"),
]


@pytest.mark.parametrize(
    "name, body, headers, status, message", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS]
)
def test_bad_input_gets_a_4xx_message_and_the_server_keeps_serving(
    server, name, body, headers, status, message
):
    response = score(server, body, headers)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    assert set(answer) == {"message"} and message in answer["message"]
    assert "Traceback" not in response.text
    good = score(server, GOOD)
    assert good.status_code == 200, good.text


def test_bodies_over_the_cap_get_413(server):
    big = json.dumps({"input_data": ["A" * (MAX_BODY_BYTES + 10)]}).encode()
    response = score(server, big)
    assert response.status_code == 413
    assert f"more than the limit of {MAX_BODY_BYTES:,} bytes" in response.json()["message"]

    def chunks():  # no Content-Length: sent with chunked transfer encoding
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    response = requests.post(server.url + "/score", data=chunks(), headers=JSON, timeout=60)
    assert response.status_code == 413, response.text
    assert score(server, GOOD).status_code == 200


def test_a_mix_of_good_and_bad_images_names_the_first_bad_index(server):
    body = {"input_data": [JPEG_A, JPEG_B, "http://10.0.0.1/x.png", "%%%"]}
    response = score(server, body)
    assert response.status_code == 400
    assert response.json()["message"].startswith("image 2: http://10.0.0.1/x.png refused")


def test_the_endpoint_script_falls_back_to_the_models_own_code(model_dir, tmp_path):
    # Azure's layout, in an interpreter where deitkit is not installed (-S skips the .pth).
    root = tmp_path / "azureml-models" / "deit" / "1"
    root.mkdir(parents=True)
    (root / "mlflow_model").symlink_to(model_dir, target_is_directory=True)
    script = f"""
import importlib.util, json, flask
spec = importlib.util.spec_from_file_location("entry_module", {str(ENDPOINT_SCRIPT)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.init()
app = flask.Flask("t")
body = json.dumps({{"input_data": [{JPEG_A!r}]}})
with app.test_request_context("/score", method="POST", data=body,
                              content_type="application/json"):
    response = module.run(flask.request)
import deitkit
print(json.dumps({{"status": response.status_code, "deitkit": deitkit.__file__}}))
"""
    env = {
        **os.environ,
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "AZUREML_MODEL_DIR": str(root),
    }
    done = subprocess.run(
        [sys.executable, "-S", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert Path(result["deitkit"]).is_relative_to(root / "mlflow_model" / "code")


def _serve_without_starting(model: Path, env: dict[str, str] | None = None):
    """`deitkit serve --model MODEL` in a child process, expected to refuse before starting."""
    return subprocess.run(
        [sys.executable, "-m", "deitkit.cli.serve", "--model", str(model), "--port", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize(
    "before, after",
    [
        ("", GUNICORN_CMD_ARGS),
        ("--keep-alive 5", f"{GUNICORN_CMD_ARGS} --keep-alive 5"),
        ("--config my_conf.py", "--config my_conf.py"),  # the operator's own config wins
        ("-c my_conf.py", "-c my_conf.py"),
        ("--config=my_conf.py", "--config=my_conf.py"),
    ],
)
def test_serve_uses_the_deployments_gunicorn_settings(monkeypatch, before, after):
    monkeypatch.setenv("GUNICORN_CMD_ARGS", before)
    server_module._use_deitkit_gunicorn_conf()
    assert os.environ["GUNICORN_CMD_ARGS"] == after


@pytest.mark.timeout(150)
def test_serve_refuses_an_invalid_read_timeout_in_one_line(model_dir):
    done = _serve_without_starting(model_dir, {"DEITKIT_READ_TIMEOUT": "never"})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: DEITKIT_READ_TIMEOUT='never' is invalid: expected a number of seconds > 0"
    )


def test_serve_refuses_a_folder_without_a_model(tmp_path):
    done = _serve_without_starting(tmp_path)
    assert done.returncode == 2
    assert "error:" in done.stderr and "no packaged model (MLmodel)" in done.stderr
    assert "Traceback" not in done.stderr


def test_mlflows_own_server_gives_the_same_probabilities(model_dir, server):
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    log = (model_dir.parent / "mlflow-serve.log").open("w+b")
    # MLflow execs `uvicorn` by name: the virtualenv's bin/ must be on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": path},
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, _tail(log)
            try:
                if requests.get(url + "/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"mlflow models serve was not ready in 180 s:\n{_tail(log)}")
        body = {"dataframe_split": {"columns": ["image"], "data": [[JPEG_A], [JPEG_B]]}}
        theirs = requests.post(url + "/invocations", json=body, timeout=60)
        assert theirs.status_code == 200, theirs.text
        ours = score(server, body)
        assert ours.status_code == 200, ours.text
        mlflow_rows, our_rows = theirs.json()["predictions"], ours.json()["predictions"]
        assert [row["labels"] for row in mlflow_rows] == [LABELS, LABELS]
        assert [row["predicted"] for row in mlflow_rows] == [row["predicted"] for row in our_rows]
        np.testing.assert_allclose(
            [row["probs"] for row in mlflow_rows], [row["probs"] for row in our_rows], atol=1e-5
        )
        # MLflow's server refuses the same bad input with a 4xx, not a crash.
        bad = requests.post(url + "/invocations", json={"instances": ["%%%"]}, timeout=60)
        assert 400 <= bad.status_code < 500 and "image 0" in bad.text
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def _tail(log, limit: int = 5000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-limit:]


def test_a_server_that_fails_to_start_says_why_in_one_line(model_dir, tmp_path):
    from deitkit.errors import ConfigError

    log = tmp_path / "server.log"
    server = LocalServer(model_dir, env={"DEITKIT_MAX_IMAGES": "many"}, log_file=log)
    with pytest.raises(ConfigError) as caught, server:
        pass
    message = str(caught.value)
    assert message == (
        "the server exited with code 3: DEITKIT_MAX_IMAGES='many' is invalid: expected an "
        f"integer >= 1 (server log: {log})"
    )
    assert "Traceback" in log.read_text()  # the whole story stays in the log


# --- Azure's catalog model (mlflow.transformers), untouched, served by deitkit ------------------

CATALOG_LABELS = [*LABELS, "tench", "goldfish", "jay"]  # more than the pipeline's top 5
FP32 = {"DEITKIT_INFERENCE_DTYPE": "fp32"}  # answers to compare with transformers' own, to 1e-4


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory) -> Path:
    """The catalog model as Azure mounts a registered model: <root>/mlflow_model_folder/."""
    root = tmp_path_factory.mktemp("catalog") / "registered"
    save_catalog_model(root / "mlflow_model_folder", labels=CATALOG_LABELS)
    return root


@pytest.fixture(scope="module")
def catalog_server(catalog_dir):
    with LocalServer(catalog_dir, env=FP32) as running:
        yield running
        assert running.process.poll() is None, running.output()


@pytest.fixture(scope="module")
def catalog_pyfunc(catalog_dir):
    """What Azure's no-code deployment runs: mlflow's transformers pyfunc, rows as records."""
    import mlflow

    model = mlflow.pyfunc.load_model(str(catalog_dir / "mlflow_model_folder"))
    images = [JPEG_A, JPEG_B]
    return model.predict(pd.DataFrame({"image": images})).to_dict(orient="records")


def test_the_catalog_models_records_answer_equals_its_own_pyfunc(catalog_server, catalog_pyfunc):
    body = {"input_data": [JPEG_A, JPEG_B], "params": {"format": "records"}}
    response = score(catalog_server, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer) == 2
    for ours, theirs in zip(answer, catalog_pyfunc, strict=True):
        assert list(ours) == [str(rank) for rank in theirs] == ["0", "1", "2", "3", "4"]
        assert [ours[str(k)]["label"] for k in theirs] == [theirs[k]["label"] for k in theirs]
        np.testing.assert_allclose(
            [ours[str(k)]["score"] for k in theirs], [theirs[k]["score"] for k in theirs], atol=1e-4
        )
    # What Azure's fine-tuning notebooks do with the answer.
    prediction = json.loads(response.text)[0]
    assert prediction["0"]["label"] == catalog_pyfunc[0][0]["label"]


def test_the_catalog_model_answers_every_request_form_as_deitkits_packages_do(
    catalog_server, catalog_pyfunc
):
    table = score(
        catalog_server,
        {"input_data": {"columns": ["image"], "index": [0, 1], "data": [JPEG_A, JPEG_B]}},
    )
    assert table.status_code == 200, table.text
    probs = []
    for item, theirs in zip(table.json(), catalog_pyfunc, strict=True):
        assert set(item) == {"probs", "labels"} and item["labels"] == CATALOG_LABELS
        by_label = dict(zip(item["labels"], item["probs"], strict=True))
        top = [theirs[k]["label"] for k in theirs]
        np.testing.assert_allclose(
            [by_label[label] for label in top], [theirs[k]["score"] for k in theirs], atol=1e-4
        )
        probs.append(item["probs"])

    ranked = score(catalog_server, {"input_data": [JPEG_A, JPEG_B]}).json()
    for items, theirs in zip(ranked, catalog_pyfunc, strict=True):
        assert len(items) == len(CATALOG_LABELS)  # every label, best first
        assert [item["label"] for item in items[:5]] == [theirs[k]["label"] for k in theirs]

    for form in (
        {"dataframe_split": {"columns": ["image"], "data": [[JPEG_A], [JPEG_B]]}},
        {"dataframe_records": [{"image": JPEG_A}, {"image": JPEG_B}]},
        {"instances": [JPEG_A, JPEG_B]},
        {"inputs": {"image": [JPEG_A, JPEG_B]}},
    ):
        response = score(catalog_server, form)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        np.testing.assert_allclose([p["probs"] for p in predictions], probs, atol=1e-6)
        assert [p["predicted"] for p in predictions] == [[t[0]["label"]] for t in catalog_pyfunc]
    # MLflow's forms in the records form: what `mlflow models serve` answers for this model.
    records = {"dataframe_records": [{"image": JPEG_A}], "params": {"format": "records"}}
    answer = score(catalog_server, records).json()
    assert (
        list(answer) == ["predictions"]
        and answer["predictions"][0]["0"]["label"] == (catalog_pyfunc[0][0]["label"])
    )


@pytest.mark.parametrize(
    ("save", "message"),
    [(save_hftransformersv2_model, "older hftransformersv2 flavor"),
     (save_text_classification_model, "a 'text-classification' model")],
    ids=["hftransformersv2", "text-classification"],
)  # fmt: skip
def test_serve_refuses_an_unusable_mlflow_model_in_one_line(save, message, tmp_path):
    model = save(tmp_path / "model")
    done = _serve_without_starting(model)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {model / 'MLmodel'}: ") and message in line


# --- a package's per-label thresholds and temperature, served ---------------------------------


@pytest.fixture(scope="module")
def tuned_model(tmp_path_factory) -> tuple[Path, dict[str, float], list[float], list[float]]:
    """(package, thresholds, probs at T=2, probs at T=1) of a multilabel model whose
    thresholds put every label of JPEG_A on the other side of 0.5, with temperature 2."""
    from deitkit.inference import load_packaged
    from deitkit.packaging import with_decisions

    root = tmp_path_factory.mktemp("tuned")
    checkpoint = save_tiny_checkpoint(root / "checkpoint", labels=LABELS, weight_std=0.3)
    config = json.loads((checkpoint / "config.json").read_text())
    config["problem_type"] = "multi_label_classification"
    (checkpoint / "config.json").write_text(json.dumps(config))
    base = package_model(checkpoint, root / "base")
    plain = load_packaged(base, dtype="fp32")
    probs = plain.with_decisions(temperature=2.0).predict_inputs([JPEG_A])[0].probs
    thresholds = {
        label: p - 0.01 if p < 0.5 else min(p + 0.01, 1.0)
        for label, p in zip(LABELS, probs, strict=True)
    }
    tuned = with_decisions(base, root / "tuned", thresholds=thresholds, temperature=2.0)
    return tuned, thresholds, probs, plain.predict_inputs([JPEG_A])[0].probs


@pytest.fixture(scope="module")
def tuned_server(tuned_model):
    # Absolute paths: the test run's PYTHONPATH (src) must reach the workers wherever they run.
    path = os.pathsep.join(
        str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    )
    with LocalServer(tuned_model[0], env={**FP32, "PYTHONPATH": path}) as running:
        yield running
        assert running.process.poll() is None, running.output()


def test_the_server_decides_with_the_packages_thresholds_and_temperature(tuned_model, tuned_server):
    from deitkit.calibration import apply_temperature, logits_from_probs
    from deitkit.inference import Prediction
    from deitkit.tasks import Task

    _, thresholds, probs, plain_probs = tuned_model
    under = [label for label, p in zip(LABELS, probs, strict=True) if p < 0.5]
    over = [label for label in LABELS if label not in under]
    by_score = sorted(LABELS, key=lambda label: -probs[LABELS.index(label)])

    answer = score(tuned_server, {"instances": [JPEG_A, JPEG_B]})
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    np.testing.assert_allclose(rows[0]["probs"], probs, atol=1e-5)
    # The temperature is applied in the server: sigmoid(logits / 2), not the package's T=1 output.
    logits = logits_from_probs(Task.MULTILABEL, [plain_probs])
    np.testing.assert_allclose(
        rows[0]["probs"], apply_temperature(Task.MULTILABEL, logits, 2.0)[0], atol=1e-5
    )
    assert not np.allclose(rows[0]["probs"], plain_probs, atol=1e-3)
    assert rows[0]["predicted"] == [label for label in by_score if label in under]
    for row in rows:
        tuned = Prediction(row["probs"], LABELS, Task.MULTILABEL, 0.5, tuple(thresholds.values()))
        assert row["predicted"] == tuned.predicted()

    ranked = score(tuned_server, {"input_data": [JPEG_A]}).json()
    assert [item["label"] for item in ranked[0]] == rows[0]["predicted"]

    # The request's threshold decides every label instead.
    body = {"instances": [JPEG_A], "params": {"threshold": 0.5}}
    assert score(tuned_server, body).json()["predictions"][0]["predicted"] == [
        label for label in by_score if label in over
    ]
    cut = score(tuned_server, {"input_data": [JPEG_A], "params": {"threshold": 0.5}}).json()
    assert [item["label"] for item in cut[0]] == [label for label in by_score if label in over]
