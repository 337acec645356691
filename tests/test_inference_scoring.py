"""The scoring pipeline: per-item decoding, batches of max_batch_size, strict and lenient runs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import helpers
import numpy as np
import pytest
from helpers import png_bytes, tiny_classifier, write_images
from PIL import Image

from deitkit.errors import ImageError
from deitkit.images import PixelBudget, PixelBudgetError
from deitkit.inference import Classifier
from deitkit.inference.scoring import Item, decode_item, score_batches, score_items

LABELS = ["blue", "green", "red"]
COLOURS = list(helpers.COLOURS.values())


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Classifier:
    return tiny_classifier(tmp_path_factory.mktemp("ckpt"))


def test_one_bad_item_does_not_spoil_its_batch(classifier, tmp_path):
    paths = write_images(tmp_path, 3)
    (tmp_path / "empty.png").write_bytes(b"")
    items = [
        Item("0", path=paths[0]),
        Item("empty", path=tmp_path / "empty.png"),
        Item("b64", text=base64.b64encode(png_bytes(COLOURS[1])).decode()),
        Item("not-base64", text="%%%"),
        Item("nan", text=float("nan")),
    ]

    scored = score_items(classifier, items)
    alone = classifier.predict_images([Image.open(paths[0]).convert("RGB")])[0]

    assert [bool(s.error) for s in scored] == [False, True, False, True, True]
    assert scored[1].error == "the file is empty (0 bytes)"
    assert "not valid base64" in scored[3].error
    assert "expected a string" in scored[4].error
    np.testing.assert_allclose(scored[0].probs, alone, atol=1e-6)


def test_batches_hold_at_most_max_batch_size_items_and_read_them_lazily(
    classifier, tmp_path, monkeypatch
):
    paths = write_images(tmp_path, 10)
    calls: list[int] = []
    original = Classifier.predict_images
    monkeypatch.setattr(
        Classifier,
        "predict_images",
        lambda self, images: calls.append(len(images)) or original(self, images),
    )
    pulled: list[int] = []

    def items():
        for i, path in enumerate(paths):
            pulled.append(i)
            yield Item(path.name, path=path)

    batches = score_batches(classifier, items())
    first = next(batches)

    assert [s.item.name for s in first] == ["00.png", "01.png", "02.png", "03.png"]
    assert pulled == [0, 1, 2, 3]  # nothing past the first batch is read (or decoded) yet
    rest = list(batches)
    assert [len(batch) for batch in [first, *rest]] == [4, 4, 2]
    assert calls == [4, 4, 2]
    together = np.stack([s.probs for batch in [first, *rest] for s in batch])
    np.testing.assert_allclose(together, classifier.predict_images(_open(paths)), atol=1e-6)


def test_a_batch_of_bad_items_predicts_nothing(classifier, monkeypatch):
    monkeypatch.setattr(Classifier, "predict_images", lambda self, images: pytest.fail("called"))
    scored = score_items(classifier, [Item("a", text="%%%"), Item("b", error="no image column")])
    assert "not valid base64" in scored[0].error and scored[1].error == "no image column"
    assert all(s.probs is None for s in scored)


def test_errors_are_one_line(classifier, monkeypatch):
    def decode(*args, **kwargs):
        raise ImageError("broken\n  data   stream", source="x")

    monkeypatch.setattr(Classifier, "decode_file", decode)
    (scored,) = score_items(classifier, [Item("x", path=Path("x.png"))])
    assert scored.error == "broken data stream"


def test_strict_raises_the_first_bad_item_naming_it(classifier):
    good = base64.b64encode(png_bytes(COLOURS[0])).decode()
    items = [Item(f"image {i}", text=value) for i, value in enumerate([good, "%%%", None])]

    with pytest.raises(ImageError, match=r"^image 1: ") as raised:
        score_items(classifier, items, strict=True)

    assert raised.value.source == "image 1"
    assert len(score_items(classifier, items[:1], strict=True)) == 1


def test_an_items_own_fetcher_wins_over_the_classifiers(classifier):
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return png_bytes(COLOURS[2])

    item = Item("image 0", text="https://images.example.test/red.png", fetch_url=fetch)
    assert classifier.fetch_url is None
    # Reduced at once to the tiny model's resize (16 px / 0.875 = 18): its input size.
    assert decode_item(classifier, item).size == (18, 18)
    assert fetched == ["https://images.example.test/red.png"]
    with pytest.raises(ImageError, match="URL inputs are not enabled here"):
        decode_item(classifier, Item("image 1", text=item.text))


def _open(paths: list[Path]) -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in paths]


def test_items_are_reduced_to_the_models_size_and_predict_as_the_full_images(
    classifier, tmp_path, monkeypatch
):
    big = tmp_path / "big.png"
    helpers.noisy_square(np.random.default_rng(3), COLOURS[0], size=300).save(big)
    wide = base64.b64encode(_png(helpers.noisy_square(np.random.default_rng(4), COLOURS[2], 90)))
    items = [Item("big", path=big), Item("wide", text=wide.decode())]
    seen: list[tuple[int, int]] = []
    original = Classifier.predict_images
    monkeypatch.setattr(
        Classifier,
        "predict_images",
        lambda self, images: seen.extend(i.size for i in images) or original(self, images),
    )

    scored = score_items(classifier, items)

    assert seen == [(18, 18), (18, 18)]  # the tiny model's resize: 16 px / 0.875
    full = [Image.open(big).convert("RGB"), Image.open(io.BytesIO(base64.b64decode(wide)))]
    expected = original(classifier, [image.convert("RGB") for image in full])
    np.testing.assert_array_equal(np.stack([s.probs for s in scored]), expected)


def test_a_pixel_budget_spans_the_items_and_names_the_one_that_passes_it(classifier, tmp_path):
    paths = write_images(tmp_path, 3)  # 20x20 = 400 pixels each
    items = [Item(path.name, path=path) for path in paths]

    with pytest.raises(PixelBudgetError, match=r"02\.png: with this 20x20 image .* 1,200 pixels"):
        score_items(classifier, items, strict=True, budget=PixelBudget(1000))
    lenient = score_items(classifier, items, budget=PixelBudget(1000))
    assert [bool(s.error) for s in lenient] == [False, False, True]
    assert "more than the limit of 1,000 pixels per request" in lenient[2].error
    assert all(not s.error for s in score_items(classifier, items, budget=PixelBudget(1200)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
