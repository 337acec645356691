"""Inference engines: torch fp32/bf16/int8 and ONNX Runtime, the export, the record, the choice."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import deitkit.inference.engines.offers as offers_module
import deitkit.inference.engines.onnx_export as export_module
from deitkit.errors import ConfigError
from deitkit.images import load_image
from deitkit.inference import Classifier, packaged_checkpoint
from deitkit.inference.engines import (
    ENGINES,
    Engine,
    EngineRecord,
    Offer,
    Offers,
    Request,
    Verdict,
    choose_engine,
    read_record,
    requested,
    without_record,
    write_record,
)
from deitkit.inference.engines.onnx_engines import OnnxEngine
from deitkit.inference.engines.onnx_export import export_onnx
from deitkit.inference.engines.pixels import fixed_pixels
from deitkit.inference.engines.timing import time_engine
from deitkit.inference.engines.torch_engines import TorchEngine, TorchInt8Engine

LABELS = ["blue", "green", "red"]


@pytest.fixture(scope="module")
def exported(judged_package):
    """The shared package's checkpoint folder (with its ONNX export), the model on torch-fp32,
    the export's outcome and the validation images."""
    package, data = judged_package
    folder = packaged_checkpoint(package)
    classifier = Classifier.from_pretrained(folder, engine="torch", dtype="fp32")
    outcome = read_record(folder).export
    images = [load_image(p) for p in sorted(data.rglob("*.png"))]
    return folder, classifier, outcome, images


def pixels_of(classifier: Classifier, images: list[Image.Image]) -> torch.Tensor:
    return classifier.transform(images)


# --- engines --------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_every_engine_maps_pixels_to_float32_logits(exported):
    folder, classifier, _, images = exported
    pixels = pixels_of(classifier, images)
    with torch.inference_mode():
        expected = classifier.model(pixel_values=pixels).logits
    engines = [
        TorchEngine("torch-fp32", classifier.model),
        TorchEngine("torch-bf16", classifier.model),
        TorchInt8Engine(classifier.model),
        OnnxEngine("onnx-fp32", folder / "model.onnx", threads=1),
        OnnxEngine("onnx-int8", folder / "model.int8.onnx", threads=1),
    ]
    assert [e.name for e in engines] == list(ENGINES)
    for engine in engines:
        logits = engine(pixels)
        assert logits.dtype == torch.float32 and logits.shape == (24, 3), engine.name
        # Reduced precision moves logits a little; the tiny model's logits span about ±3.
        tolerance = 1e-4 if engine.dtype == "fp32" else 0.15
        assert (logits - expected).abs().max().item() < tolerance, engine.name
    assert torch.equal(engines[0](pixels), expected)
    assert not torch.equal(engines[2](pixels), expected)  # really quantized
    assert {
        type(m.weight).__name__
        for m in engines[2].model.modules()
        if hasattr(m, "weight") and isinstance(m, torch.nn.Linear)
    } == {"Int8Tensor"}


def test_torch_int8_answers_do_not_depend_on_the_batch(exported):
    _, classifier, _, images = exported
    engine = TorchInt8Engine(classifier.model)
    pixels = pixels_of(classifier, images[:6])
    together = engine(pixels)
    alone = torch.cat([engine(pixels[i : i + 1]) for i in range(6)])
    # Activations are scaled per token, so each image's answer is its own, to the bit.
    assert torch.equal(together, alone)


def test_the_export_matches_torch_and_has_a_dynamic_batch(exported):
    folder, classifier, outcome, images = exported
    assert outcome["onnx-fp32"]["shipped"] and outcome["onnx-int8"]["shipped"]
    assert outcome["onnx-fp32"]["max_abs_logit_diff"] <= 1e-4
    assert outcome["onnx-fp32"]["max_abs_prob_diff"] <= 1e-4
    engine = OnnxEngine("onnx-fp32", folder / "model.onnx", threads=1)
    for count in (1, 5):
        pixels = pixels_of(classifier, images[:count])
        np.testing.assert_allclose(
            engine(pixels).numpy(), classifier.engine(pixels).numpy(), atol=1e-4
        )


def test_an_export_over_the_tolerance_is_not_shipped(exported, tmp_path, monkeypatch, caplog):
    folder, classifier, _, _ = exported
    monkeypatch.setenv("DEITKIT_ONNX_EXPORT", "on")
    # The fixture's export, copied: exporting again would only cost time.
    copy = lambda model, path, size: shutil.copy(folder / "model.onnx", path)  # noqa: E731
    monkeypatch.setattr(export_module, "_export", copy)
    monkeypatch.setattr(export_module, "MAX_EXPORT_DIFF", -1.0)  # any difference is too much
    with caplog.at_level(logging.WARNING):
        outcome = export_onnx(
            classifier.model,
            tmp_path,
            normalize=classifier.transform.normalize,
            size=classifier.transform.output_size,
            task=classifier.task,
        )
    assert not outcome["onnx-fp32"]["shipped"] and not outcome["onnx-int8"]["shipped"]
    assert "onnxruntime differs from torch by" in outcome["onnx-fp32"]["reason"]
    assert "not shipping the ONNX export" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_the_export_can_be_turned_off_and_refuses_other_values(exported, tmp_path, monkeypatch):
    _, classifier, _, _ = exported
    arguments = dict(
        normalize=classifier.transform.normalize,
        size=classifier.transform.output_size,
        task=classifier.task,
    )
    monkeypatch.setenv("DEITKIT_ONNX_EXPORT", "off")
    outcome = export_onnx(classifier.model, tmp_path, **arguments)
    assert outcome["onnx-fp32"] == {"shipped": False, "reason": "DEITKIT_ONNX_EXPORT=off"}
    monkeypatch.setenv("DEITKIT_ONNX_EXPORT", "maybe")
    with pytest.raises(ConfigError, match=r"^DEITKIT_ONNX_EXPORT 'maybe' is not supported"):
        export_onnx(classifier.model, tmp_path, **arguments)


# --- the record -----------------------------------------------------------------------------


def test_the_record_round_trips_and_refuses_engines_it_does_not_name(tmp_path):
    verdicts = {
        "torch-fp32": Verdict(True, "the reference", 1.0, None, 0.9, 0.0),
        "onnx-int8": Verdict(False, "top-1 agreement 99.0%", 0.99, None, 0.88, -2.0),
    }
    write_record(tmp_path, EngineRecord(verdicts, {"images": 100}, {"onnx-fp32": {}}))
    data = json.loads((tmp_path / "engines.json").read_text())
    assert data["schema_version"] == 1 and data["reference"] == "torch-fp32"
    assert data["rule"] == {"min_agreement": 0.995, "max_metric_loss_points": 0.2}
    assert data["engines"]["onnx-int8"] == {
        "allowed": False,
        "reason": "top-1 agreement 99.0%",
        "agreement": 0.99,
        "metric": 0.88,
        "metric_change_points": -2.0,
    }
    record = read_record(tmp_path)
    assert record.verdicts["onnx-int8"] == verdicts["onnx-int8"]
    assert record.allowed("torch-fp32") and not record.allowed("onnx-int8")
    assert record.verdicts["torch-int8"] == Verdict(False, "engines.json does not judge it")
    assert read_record(tmp_path / "missing") is None


def test_a_broken_record_is_refused_naming_the_file(tmp_path):
    (tmp_path / "engines.json").write_text('{"schema_version": 7, "engines": {}}')
    with pytest.raises(ConfigError, match=r"engines.json: not an engine record .*schema_version"):
        read_record(tmp_path)


def test_without_a_record_only_fp32_and_bf16_are_allowed():
    record = without_record()
    assert [n for n in ENGINES if record.allowed(n)] == ["torch-fp32", "torch-bf16"]


# --- the start-up choice --------------------------------------------------------------------


class Fake(Engine):
    def __init__(self, name: str, built: list[str]):
        self.name = name
        built.append(name)

    def __call__(self, pixels):
        return torch.zeros(len(pixels), 2)


def fake_offers(built: list[str], *, slow=(), missing=None) -> Offers:
    offers = {
        name: Offer(name, lambda name=name: Fake(name, built), "emulated" if name in slow else "")
        for name in ENGINES
        if name not in (missing or {})
    }
    return Offers(offers, dict(missing or {}))


def record_allowing(*names: str) -> EngineRecord:
    return EngineRecord(
        {n: Verdict(n in names, "ok" if n in names else "lost 1 point") for n in ENGINES}
    )


SPEED = {
    "torch-fp32": 0.050,
    "torch-bf16": 0.030,
    "torch-int8": 0.020,
    "onnx-fp32": 0.040,
    "onnx-int8": 0.025,
}


def by_table(engine, pixels, give_up) -> float:
    return SPEED[engine.name]


def test_the_fastest_allowed_engine_serves_and_the_reason_lists_the_timings():
    built: list[str] = []
    record = record_allowing("torch-fp32", "onnx-fp32", "onnx-int8", "torch-int8")
    engine, choice = choose_engine(
        fake_offers(built, slow=("torch-int8",)),
        record,
        Request(),
        pixels=torch.zeros(2, 1),
        timer=by_table,
    )
    assert engine.name == choice.name == "onnx-int8"
    # torch-bf16 is refused by the record, torch-int8 slow here: neither is built.
    assert built == ["onnx-int8", "onnx-fp32", "torch-fp32"]  # likeliest fastest first
    assert choice.timings == {"torch-fp32": 50.0, "onnx-fp32": 40.0, "onnx-int8": 25.0}
    assert choice.reason == (
        "fastest at batch 2 (ms/img: onnx-int8 25.0, onnx-fp32 40.0, torch-fp32 50.0)"
    )


def test_one_allowed_engine_is_used_without_timing():
    def never(engine, pixels, give_up):
        raise AssertionError("timed")

    built: list[str] = []
    engine, choice = choose_engine(
        fake_offers(built, slow=("torch-bf16",)),
        without_record(),
        Request(),
        pixels=torch.zeros(2, 1),
        timer=never,
    )
    assert (engine.name, built) == ("torch-fp32", ["torch-fp32"])
    assert choice.reason == "the only engine allowed here (fp32 reference)"


def test_overrides_narrow_the_choice_and_run_a_refused_engine_with_a_warning(caplog):
    built: list[str] = []
    record = record_allowing("torch-fp32", "onnx-fp32")
    request = requested("onnx", None)
    engine, choice = choose_engine(
        fake_offers(built), record, request, pixels=torch.zeros(2, 1), timer=by_table
    )
    assert engine.name == "onnx-fp32" and choice.reason == (
        "the one allowed engine engine=onnx matches"
    )
    with caplog.at_level(logging.WARNING):
        engine, choice = choose_engine(
            fake_offers(built),
            record,
            requested(None, "int8"),
            pixels=torch.zeros(2, 1),
            timer=by_table,
        )
    assert engine.name == "torch-int8"  # both int8 engines refused: the faster one runs
    assert choice.reason.startswith("fastest at batch 2 (ms/img: torch-int8 20.0, onnx-int8 25.0)")
    assert "dtype=int8 asks for it, although the record refuses torch-int8 (lost 1 point)" in (
        choice.reason
    )
    assert "running torch-int8 or onnx-int8: dtype=int8 asks for it" in caplog.text


def test_an_override_nothing_here_can_run_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("DEITKIT_INFERENCE_ENGINE", "onnx")
    missing = {"onnx-fp32": "the model has no model.onnx", "onnx-int8": "no model.int8.onnx"}
    with pytest.raises(ConfigError) as caught:
        choose_engine(
            fake_offers([], missing=missing),
            without_record(),
            requested(),
            pixels=torch.zeros(1, 1),
            timer=by_table,
        )
    assert str(caught.value) == (
        "DEITKIT_INFERENCE_ENGINE=onnx: no engine of that kind runs here (onnx-fp32: the model "
        "has no model.onnx; onnx-int8: no model.int8.onnx)"
    )


def test_requests_come_from_arguments_then_the_environment(monkeypatch):
    monkeypatch.delenv("DEITKIT_INFERENCE_ENGINE", raising=False)
    monkeypatch.delenv("DEITKIT_INFERENCE_DTYPE", raising=False)
    assert requested() == Request("auto", "auto", "")
    monkeypatch.setenv("DEITKIT_INFERENCE_DTYPE", " bfloat16 ")
    monkeypatch.setenv("DEITKIT_INFERENCE_ENGINE", "TORCH")
    assert requested() == Request(
        "torch", "bf16", "DEITKIT_INFERENCE_ENGINE=torch, DEITKIT_INFERENCE_DTYPE=bf16"
    )
    assert requested("onnx", "float32") == Request("onnx", "fp32", "engine=onnx, dtype=fp32")
    monkeypatch.setenv("DEITKIT_INFERENCE_ENGINE", "tensorrt")
    with pytest.raises(
        ConfigError,
        match=r"^DEITKIT_INFERENCE_ENGINE 'tensorrt' is not supported; expected one of: auto, "
        r"torch, onnx$",
    ):
        requested()
    monkeypatch.setenv("DEITKIT_INFERENCE_ENGINE", "auto")
    monkeypatch.setenv("DEITKIT_INFERENCE_DTYPE", "fp16")
    with pytest.raises(ConfigError, match=r"^DEITKIT_INFERENCE_DTYPE 'fp16' is not supported"):
        requested()


def test_the_timer_warms_up_then_reports_seconds_per_image():
    calls = []

    class Counting(Engine):
        name = "torch-fp32"

        def __call__(self, pixels):
            calls.append(len(pixels))
            return torch.zeros(len(pixels), 2)

    seconds = time_engine(Counting(), torch.zeros(4, 3, 2, 2))
    assert calls == [4, 4] and 0 < seconds < 1  # a warm-up, then one pass
    # A warm-up already slower than `give_up` per image ends the timing: that engine has lost.
    calls.clear()
    assert time_engine(Counting(), torch.zeros(4, 3, 2, 2), give_up=0.0) > 0
    assert calls == [4]


def test_later_engines_may_give_up_at_one_and_a_half_times_the_best_so_far():
    seen = {}

    def timer(engine, pixels, give_up):
        seen[engine.name] = give_up
        return SPEED[engine.name]

    choose_engine(
        fake_offers([]),
        record_allowing("torch-fp32", "onnx-fp32", "onnx-int8"),
        Request(),
        pixels=torch.zeros(1, 1),
        timer=timer,
    )
    assert seen == {
        "onnx-int8": float("inf"),
        "onnx-fp32": pytest.approx(0.025 * 1.5),
        "torch-fp32": pytest.approx(0.025 * 1.5),
    }


def test_fixed_pixels_are_the_same_on_every_call():
    first, second = fixed_pixels(4, 16, 12), fixed_pixels(4, 16, 12)
    assert first.shape == (4, 3, 16, 12) and first.dtype == torch.uint8
    assert torch.equal(first, second)


# --- the loader -----------------------------------------------------------------------------


def test_the_loader_serves_the_fastest_engine_the_record_allows(exported, caplog):
    folder, _, _, images = exported
    judged = (folder / "engines.json").read_text()
    write_record(folder, record_allowing("torch-fp32", "onnx-fp32", "onnx-int8"))
    try:
        with caplog.at_level(logging.INFO, logger="deitkit.inference.classifier"):
            classifier = Classifier.from_pretrained(folder, timer=by_table)
        assert classifier.engine.name == "onnx-int8" and classifier.precision.name == "int8"
        assert "serving with onnx-int8: fastest at batch 1 (ms/img: onnx-int8 25.0" in caplog.text
        probs = classifier.predict_images(images)
        assert probs.shape == (24, 3)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        fp32 = Classifier.from_pretrained(folder, engine="torch", dtype="fp32")
        assert fp32.engine.name == "torch-fp32"
        np.testing.assert_allclose(probs, fp32.predict_images(images), atol=0.1)
    finally:
        (folder / "engines.json").write_text(judged)


def test_a_plain_checkpoint_serves_with_torch_and_bf16_only_where_native(
    tiny_checkpoint, monkeypatch
):
    folder = tiny_checkpoint("deit", labels=LABELS)
    monkeypatch.setattr(offers_module, "native_bf16", lambda device: True)
    chosen = Classifier.from_pretrained(folder, timer=by_table)
    assert chosen.engine.name == "torch-bf16"
    monkeypatch.setattr(offers_module, "native_bf16", lambda device: False)
    plain = Classifier.from_pretrained(folder, timer=by_table)
    assert plain.engine.name == "torch-fp32"
    forced = Classifier.from_pretrained(folder, dtype="bf16", timer=by_table)
    assert forced.engine.name == "torch-bf16"
    assert "bf16 is not native on this cpu" in forced.engine_choice.reason


def test_a_record_that_allows_nothing_still_serves_the_fp32_reference(caplog):
    with caplog.at_level(logging.WARNING):
        engine, choice = choose_engine(
            fake_offers([]), record_allowing(), Request(), pixels=torch.zeros(1, 1), timer=by_table
        )
    assert engine.name == "torch-fp32"
    assert choice.reason == "the record allows no engine; the fp32 reference serves"
    assert "the record allows no engine" in caplog.text
