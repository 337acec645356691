"""Memory per request against the real server and batch-score: huge images, FIFOs, sparse files."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import psutil
import pytest
import requests
from PIL import Image

from deitkit.models import finetunable_class, label_config, parse_model_ref, scratch_config
from deitkit.packaging import package_model
from deitkit.quickstart import MODELS, TRAINING
from deitkit.serving.server import LocalServer
from deitkit.tasks import Task
from deitkit.transforms import EvalTransform

pytestmark = pytest.mark.slow  # a server, 8 decodes of 64 M pixels, a batch-score process

LABELS = ["0", "1", "2"]
SIDE = 8000  # 64 M pixels: the default per-image cap (DEITKIT_MAX_IMAGE_PIXELS)
# Issue 13's bound for the quickstart's model; before images were reduced one at a time, the
# worker peaked at 2.45 GB on this request.
MAX_WORKER_RSS = 1_200_000_000
# The batch-score process: torch, transformers and the model take about 0.5 GB; reading the
# 3 GB file whole (as before) took 3.68 GB.
MAX_BATCH_RSS = 1_000_000_000
JSON = {"Content-Type": "application/json"}
PATIENCE = 240  # seconds: a client-side bound on each answer on a busy 2-core machine


def constant_png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A one-colour RGB PNG, compressed row by row (Pillow would build the image first)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\0" + bytes(colour) * width  # filter type 0, then the pixels
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


@pytest.fixture(scope="module")
def big_png() -> str:
    """Base64 of an 8000x8000 PNG (about 270 KB of text), made once per module."""
    return base64.b64encode(constant_png(SIDE, SIDE, (30, 200, 40))).decode("ascii")


@pytest.fixture(scope="module")
def big_jpeg() -> str:
    """Base64 of an 8000x8000 JPEG: 64 M header pixels that decode at 1/8 scale, in 0.1 s."""
    buffer = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (200, 30, 40)).save(buffer, "JPEG", quality=50)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A random checkpoint of the quickstart's architecture and input size, packaged."""
    root = tmp_path_factory.mktemp("hostile-memory")
    task = Task.MULTICLASS
    size = TRAINING[task]["image_size"]
    config = scratch_config(parse_model_ref(MODELS[task]), size)
    config.update(label_config(LABELS, task))
    finetunable_class(config)(config).save_pretrained(root / "checkpoint")
    transform = EvalTransform.for_image_size(size)
    (root / "checkpoint" / "preprocessor_config.json").write_text(json.dumps(transform.to_config()))
    return package_model(root / "checkpoint", root / "mlflow_model")


@pytest.fixture(scope="module")
def server(model_dir):
    with LocalServer(model_dir) as running:
        yield running
        assert running.process.poll() is None, running.output()


def worker_peak_rss(server: LocalServer) -> int:
    """The highest VmHWM (peak resident memory, bytes) of the server's gunicorn workers."""
    peaks = []
    for child in psutil.Process(server.process.pid).children(recursive=True):
        status = Path(f"/proc/{child.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        peaks.append(int(line.split()[1]) * 1024)
    assert peaks, "the server has no worker process"
    return max(peaks)


def score(server: LocalServer, images: list[str]) -> requests.Response:
    body = json.dumps({"input_data": images})
    return requests.post(server.url + "/score", data=body, headers=JSON, timeout=PATIENCE)


@pytest.mark.timeout(PATIENCE + 60)
def test_eight_64_megapixel_pngs_in_one_request_stay_under_the_memory_bound(server, big_png):
    response = score(server, [big_png] * 8)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer) == 8 and all(ranked == answer[0] for ranked in answer)
    peak = worker_peak_rss(server)
    print(f"\nworker peak RSS (VmHWM) after 8 x {SIDE}x{SIDE} PNGs: {peak / 1e6:.0f} MB")
    assert peak < MAX_WORKER_RSS


@pytest.mark.timeout(PATIENCE + 60)
def test_a_request_over_the_pixel_budget_gets_413_naming_the_image_and_the_limit(
    server, big_jpeg, big_png
):
    # 8 x 64 M pixels fill the default budget of 512 M; the ninth image's header passes it.
    response = score(server, [big_jpeg] * 8 + [big_png])

    assert response.status_code == 413, response.text
    message = response.json()["message"]
    assert message.startswith(f"image 8: with this {SIDE}x{SIDE} image the request's images")
    assert "limit of 512,000,000 pixels per request (DEITKIT_MAX_REQUEST_PIXELS)" in message
    assert "\n" not in message
    assert score(server, [big_jpeg] * 2).status_code == 200  # the next request has its own


@pytest.mark.timeout(180)
def test_batch_score_reports_a_fifo_and_a_sparse_3_gb_file_and_reads_neither(model_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    with open(folder / "huge.mp4", "wb") as file:
        file.write(b"\0\0\0\x18ftypmp42")  # an MP4's first box, then 3 GB of holes
        os.truncate(file.fileno(), 3 * 1024**3)
    os.mkfifo(folder / "p.png")  # nobody ever writes to it: opening it for reading would block
    Image.new("RGB", (40, 30), (30, 200, 40)).save(folder / "good.png")
    output = tmp_path / "predictions.csv"
    # The child reports its own peak RSS on the way out. VmHWM, not ru_maxrss: Linux carries
    # the parent's peak (this test process's) into a child's ru_maxrss across fork and exec.
    program = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(*(line for line in open('/proc/self/status')"
        " if line.startswith('VmHWM:')), file=sys.stderr))\n"
        "from deitkit.cli.main import main\n"
        "main(sys.argv[1:])\n"
    )
    command = ["batch-score", "--model", str(model_dir), "--input", str(folder)]
    done = subprocess.run(
        [sys.executable, "-c", program, *command, "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=150,
    )

    assert done.returncode == 0, done.stderr
    with open(output, newline="") as file:
        rows = {row["file_name"]: row["error"] for row in csv.DictReader(file)}
    assert rows["good.png"] == ""
    assert rows["p.png"] == "is a FIFO, not a regular file"
    assert rows["huge.mp4"].startswith("not a supported image")
    peak = int(done.stderr.rsplit("VmHWM:", 1)[1].split()[0]) * 1024  # kB
    print(f"\nbatch-score peak RSS with a 3 GB sparse file and a FIFO: {peak / 1e6:.0f} MB")
    assert peak < MAX_BATCH_RSS
