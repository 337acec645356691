"""Hostile files against the real CLI: FIFOs, links out, a split zip bomb, unwritable outputs,
a torn predictions row. Each case ends in a clear row or one line, with nothing lost or hung."""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
import zlib
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import save_tiny_checkpoint, write_colour_folders, write_images

from deitkit.cli.main import cli

LABELS = ["blue", "green", "red"]
FIFO = "is a FIFO, not a regular file"


def deitkit(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny checkpoint folder: a model for batch-score, evaluate and predict, and what
    `deitkit package` packages."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt", labels=LABELS)


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    return write_colour_folders(tmp_path_factory.mktemp("data") / "colours")


def predictions(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False).set_index("file_name")


def make_socket(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()


@pytest.mark.timeout(60)
def test_batch_score_gives_fifos_sockets_and_links_a_row_each(model_dir, tmp_path):
    source, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    write_images(source, 2)
    write_images(elsewhere, 1)
    os.mkfifo(source / "p.png")  # `mkfifo in/p.png` hung batch-score forever
    os.mkfifo(source / "t.csv")
    make_socket(source / "s.png")
    (source / "out.png").symlink_to(elsewhere / "00.png")
    (source / "away").symlink_to(elsewhere, target_is_directory=True)
    (source / "alias").symlink_to(".", target_is_directory=True)

    result = deitkit("batch-score", "--model", model_dir, "--input", source, "--output",
                     tmp_path / "p.csv")  # fmt: skip

    assert result.exit_code == 0, result.output
    rows = predictions(tmp_path / "p.csv")
    assert rows.loc[["00.png", "01.png"], "error"].tolist() == ["", ""]
    assert rows.loc["p.png", "error"] == FIFO and rows.loc["t.csv", "error"] == FIFO
    assert rows.loc["s.png", "error"] == "is a socket, not a regular file"
    assert rows.loc["out.png", "error"].startswith("is a symlink to a file outside the input")
    assert rows.loc["away", "error"].startswith("is a symlink to a folder outside the input")
    assert rows.loc["alias", "error"].startswith("is a symlink to a folder inside the input")
    assert "scored     8, 6 with an error" in result.stdout


@pytest.mark.timeout(60)
def test_validate_calls_a_fifo_a_fifo_and_a_link_out_a_link_out(tmp_path):
    root = write_colour_folders(tmp_path / "colours")
    os.mkfifo(root / "blue" / "p.png")
    (tmp_path / "secret.png").write_bytes((root / "red" / "0.png").read_bytes())
    (root / "red" / "out.png").symlink_to(tmp_path / "secret.png")

    result = deitkit("data", "validate", root)

    assert result.exit_code == 1
    assert f"error   {root / 'blue' / 'p.png'}: image {FIFO}" in result.stdout
    assert "broken symlink" not in result.stdout
    assert (
        f"error   {root / 'red' / 'out.png'}: image is a symlink pointing outside the dataset root"
        in result.stdout
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("odd", ["fifo", "link out"])
def test_import_refuses_a_fifo_or_a_link_out_in_one_line_and_writes_nothing(tmp_path, odd):
    root = write_colour_folders(tmp_path / "colours")
    if odd == "fifo":
        os.mkfifo(root / "blue" / "odd.png")
        why = f"{FIFO}; data import copies regular files"
    else:
        (root / "blue" / "odd.png").symlink_to(tmp_path)
        why = f"is a symlink to {tmp_path}, outside the dataset folder; not followed"

    result = deitkit("data", "import", root, "--out", tmp_path / "out")

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {root / 'blue' / 'odd.png'}: {why}")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def split_bomb(path: Path, entries: int = 1024, size: int = 1 << 20) -> Path:
    """1,024 entries of 1 MiB of zeros, deflated: a 1.2 MB zip that inflates to 1 GiB.

    Written by hand rather than with zipfile, which would deflate 1 GiB of zeros (17 s on two
    cores): one entry's deflated bytes, computed once, stand for every entry.
    """
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, as zip stores it
    data = packer.compress(bytes(size)) + packer.flush()
    crc = zlib.crc32(bytes(size))
    central = []
    with open(path, "wb") as file:
        for i in range(entries):
            name = f"bomb/{i:04d}.png".encode()
            offset = file.tell()
            fields = (20, 0, 8, 0, 0, crc, len(data), size, len(name), 0)
            file.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", *fields) + name + data)
            central.append(
                struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, *fields[:-1], 0, 0, 0, 0, 0, offset)
                + name
            )
        start = file.tell()
        directory = b"".join(central)
        file.write(directory)
        file.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, entries, entries,
                               len(directory), start, 0))  # fmt: skip
    return path


@pytest.mark.timeout(60)
def test_a_split_zip_bomb_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import zipfile

    bomb = split_bomb(tmp_path / "bomb.zip")
    with zipfile.ZipFile(bomb) as archive:  # a zip as zipfile reads it, 1 GiB declared
        assert sum(info.file_size for info in archive.infolist()) == 1 << 30
    monkeypatch.setenv("DEITKIT_CACHE", str(tmp_path / "cache"))

    imported = deitkit("data", "import", bomb, "--out", tmp_path / "out")
    validated = deitkit("data", "validate", bomb)

    assert bomb.stat().st_size < 1_300_000
    for result in (imported, validated):
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {bomb}: the entries declare 1073741824 bytes")
        assert result.stderr.endswith("this looks like a zip bomb\n")
    assert not (tmp_path / "out").exists()
    written = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert written == []


@pytest.fixture
def unwritable(tmp_path):
    """A folder the command's output must go in, and the error that writing there gives.

    Not root: a read-only (0o555) folder. As root, whom chmod does not stop, a regular file
    where the folder should be: a real failure as well, asserted in its place.
    """
    blocked = tmp_path / "blocked"
    if os.geteuid() != 0:
        blocked.mkdir()
        blocked.chmod(0o555)
        yield blocked, os.strerror(errno.EACCES)
        blocked.chmod(0o755)
    else:
        blocked.write_text("a file, not a folder\n")
        yield blocked, "is a file, where a folder has to be created"
        assert blocked.read_text() == "a file, not a folder\n"


def messages(result) -> list[str]:
    """What deitkit itself said on stderr (progress bars of model loading left out)."""
    return [line for line in result.stderr.splitlines() if line.startswith(("error:", "note:"))]


def _one_line_error(result, blocked: Path, why: str, flag: str) -> None:
    assert result.exit_code == 2, result.output
    (line,) = messages(result)
    assert line.startswith(f"error: {blocked}") and f": {why} (writing {flag} {blocked}/" in line
    assert "Traceback" not in result.output


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["batch-score", "evaluate", "package", "data import"])
def test_an_unwritable_output_is_one_line_and_exit_2(command, model_dir, colours, unwritable):
    blocked, why = unwritable
    out = blocked / "out"
    args = {
        "batch-score": ["batch-score", "--model", model_dir, "--input", colours, "--output", out],
        "evaluate": ["evaluate", "--model", model_dir, "--data", colours, "--output", out],
        "package": ["package", "--checkpoint", model_dir, "--output", out],
        "data import": ["data", "import", colours, "--out", out],
    }[command]

    result = deitkit(*args)

    _one_line_error(result, blocked, why, "--out" if command == "data import" else "--output")
    if blocked.is_dir():
        assert list(blocked.iterdir()) == []


@pytest.mark.timeout(120)
def test_finetune_into_an_unwritable_output_is_one_line_and_exit_2(colours, unwritable):
    blocked, why = unwritable

    result = deitkit("finetune", "--model", "scratch:deit-tiny", "--image-size", 32, "--train",
                     colours, "--output", blocked / "run", "--epochs", 1)  # fmt: skip

    _one_line_error(result, blocked, why, "--output")


@pytest.mark.timeout(60)
def test_predict_into_a_full_stdout_is_one_line_and_exit_2(model_dir, colours, monkeypatch):
    from click.testing import _NamedTextIOWrapper

    write = _NamedTextIOWrapper.write

    def full(self, text):
        if self.name == "<stdout>":  # `deitkit predict ... > /dev/full`
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(self, text)

    monkeypatch.setattr(_NamedTextIOWrapper, "write", full)

    result = deitkit("predict", "--model", model_dir, colours / "blue" / "0.png")

    assert result.exit_code == 2
    assert messages(result) == ["error: <stdout>: No space left on device"]


@pytest.mark.timeout(60)
def test_resume_drops_a_torn_last_row_and_scores_its_item_again(model_dir, tmp_path):
    source, output = tmp_path / "in", tmp_path / "p.csv"
    write_images(source, 5)
    first = deitkit("batch-score", "--model", model_dir, "--input", source, "--output", output)
    whole = output.read_bytes()
    uncut = predictions(output)
    cut = whole.rindex(b"04.png") + 12  # killed while writing the last row
    output.write_bytes(whole[:cut])

    again = deitkit("batch-score", "--model", model_dir, "--input", source, "--output", output,
                    "--resume")  # fmt: skip

    assert first.exit_code == 0 and again.exit_code == 0, again.output
    assert messages(again) == [
        f"note: {output}:6: dropped the last row, cut short when the previous run stopped "
        "while writing it; its item is scored again"
    ]
    assert "kept       4 from the previous run" in again.stdout
    # Nothing lost: the same five rows and labels in the same order. The rescored row's fp32
    # probabilities may differ in the last digits: it ran in a batch of one, not of five.
    again_rows = predictions(output)
    assert list(again_rows.index) == list(uncut.index)
    assert output.read_bytes()[: cut - 12] == whole[: cut - 12]
    for name in uncut.index:
        assert json.loads(again_rows.loc[name, "labels"]) == json.loads(uncut.loc[name, "labels"])
        assert json.loads(again_rows.loc[name, "probs"]) == pytest.approx(
            json.loads(uncut.loc[name, "probs"]), abs=1e-5
        )
    assert json.loads(predictions(output).loc["04.png", "labels"]) == LABELS
