"""engines.json: which engines may serve a packaged model, decided at package time, and why."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deitkit.errors import ConfigError
from deitkit.inference.engines.names import ENGINES, REFERENCE, TORCH_BF16

RECORD_FILE = "engines.json"
SCHEMA_VERSION = 1
# A reduced-precision engine serves only if it keeps this share of fp32's decisions (top-1;
# multilabel: each label's yes/no) on the validation set...
MIN_AGREEMENT = 0.995
# ...and loses at most this many points (1 point = 0.01) of the primary metric.
MAX_METRIC_LOSS_POINTS = 0.2
# Without a record (a catalog model, a checkpoint folder) or a validation set, only these
# serve: fp32 is the reference and bf16 keeps fp32's exponent range (in the issue's words,
# "fp32 and bf16 only").
ALLOWED_WITHOUT_DATA = (REFERENCE, TORCH_BF16)


@dataclass(frozen=True)
class Verdict:
    """One engine's standing: may it serve, and why; the validation figures when measured.

    Attributes:
        allowed: True when the engine may serve the model.
        reason: One line saying why (or why not).
        agreement: Share of validation images whose top-1 label equals torch-fp32's.
        label_agreement: Multilabel: per label, the share of images with the same decision.
        metric: The primary metric (accuracy or iou) of this engine on the validation set.
        metric_change_points: metric minus torch-fp32's, in points (0.01 = 1 point).
    """

    allowed: bool
    reason: str
    agreement: float | None = None
    label_agreement: dict[str, float] | None = None
    metric: float | None = None
    metric_change_points: float | None = None


@dataclass(frozen=True)
class EngineRecord:
    """The verdict on every engine, what they were judged on, and the ONNX export's outcome.

    Attributes:
        verdicts: Engine name -> Verdict, for every engine in `names.ENGINES`.
        validation: What the verdicts were measured on (data, images, primary metric), or None.
        export: Per ONNX engine: `shipped` and `reason`, with the export check's differences.
    """

    verdicts: dict[str, Verdict]
    validation: dict[str, Any] | None = None
    export: dict[str, dict[str, Any]] = field(default_factory=dict)

    def allowed(self, name: str) -> bool:
        verdict = self.verdicts.get(name)
        return verdict is not None and verdict.allowed

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "reference": REFERENCE,
            "rule": {
                "min_agreement": MIN_AGREEMENT,
                "max_metric_loss_points": MAX_METRIC_LOSS_POINTS,
            },
            "validation": self.validation,
            "export": self.export,
            "engines": {name: _compact(asdict(v)) for name, v in self.verdicts.items()},
        }


def without_record() -> EngineRecord:
    """The standing of every engine for a model folder that has no engines.json."""
    verdicts = {
        name: Verdict(True, "allowed without a validation set")
        if name in ALLOWED_WITHOUT_DATA
        else Verdict(False, f"the model has no {RECORD_FILE} (made by deitkit package)")
        for name in ENGINES
    }
    return EngineRecord(verdicts)


def write_record(folder: str | Path, record: EngineRecord) -> Path:
    """Write `record` as `folder/engines.json`; return its path."""
    path = Path(folder) / RECORD_FILE
    path.write_text(json.dumps(record.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def read_record(folder: str | Path) -> EngineRecord | None:
    """`folder/engines.json` read back, or None when there is none.

    Engines the file does not name are refused (a newer deitkit may know more engines than
    the one that packaged the model).

    Raises:
        ConfigError: the file is not a record this deitkit reads, naming it and what is wrong.
    """
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"schema_version {data.get('schema_version')!r} is not 1")
        listed = data["engines"]
        verdicts = {
            name: Verdict(**listed[name])
            if name in listed
            else Verdict(False, f"{RECORD_FILE} does not judge it")
            for name in ENGINES
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"{path}: not an engine record deitkit reads ({err})") from None
    return EngineRecord(verdicts, data.get("validation"), data.get("export") or {})


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    """The verdict's fields without the ones that were not measured."""
    return {key: value for key, value in values.items() if value is not None}
