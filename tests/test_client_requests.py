"""Tests for deitkit.client_requests and `deitkit request`: bodies the scorer parses."""

from __future__ import annotations

import base64
import json

import pytest
from click.testing import CliRunner
from PIL import Image

from deitkit.cli.main import cli
from deitkit.client_requests import FORMS, encode_image, request_body
from deitkit.errors import ConfigError
from deitkit.serving.payload import parse_request


@pytest.fixture
def images(tmp_path):
    paths = []
    for i, colour in enumerate(("red", "blue")):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (40, 30), colour).save(path)
        paths.append(path)
    return paths


def test_encode_image_writes_base64_lines_as_the_seed_does(images):
    text = encode_image(images[0])
    assert text == base64.encodebytes(images[0].read_bytes()).decode("ascii")
    assert base64.b64decode(text) == images[0].read_bytes()


@pytest.mark.parametrize("form", FORMS)
def test_every_form_parses_back_to_the_same_images_in_order(images, form):
    body = request_body(images, form=form, params={"top_k": 1})
    parsed = parse_request(json.loads(json.dumps(body)), max_images=8)
    assert [base64.b64decode(v) for v in parsed.images] == [p.read_bytes() for p in images]
    assert parsed.top_k == 1


def test_the_default_is_the_model_cards_split_form(images):
    body = request_body(images)
    assert body == {
        "input_data": {
            "columns": ["image"],
            "index": [0, 1],
            "data": [encode_image(p) for p in images],
        }
    }


def test_bad_requests_are_refused_with_the_reason(images, tmp_path):
    with pytest.raises(ConfigError, match="at least one image"):
        request_body([])
    with pytest.raises(ConfigError, match="unknown request form 'xml'"):
        request_body(images, form="xml")
    with pytest.raises(ConfigError, match="cannot read the image"):
        request_body([tmp_path / "missing.png"])


def test_cli_writes_the_body_to_a_file_or_stdout(images, tmp_path):
    out = tmp_path / "request.json"
    result = CliRunner().invoke(cli, ["request", *map(str, images), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == request_body(images)
    result = CliRunner().invoke(cli, ["request", str(images[0]), "--form", "list"])
    assert json.loads(result.stdout) == request_body(images[:1], form="list")


def test_cli_asks_for_the_records_answer(images):
    args = ["request", str(images[0]), "--form", "list", "--format", "records", "--top-k", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["params"] == {"top_k": 2, "format": "records"}
    assert parse_request(body, max_images=8).format == "records"
