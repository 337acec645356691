"""Azure ML entity YAMLs read with azure-ai-ml's own loaders, their errors as `FILE: FIELD: why`."""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

# What each kind of YAML is loaded with (the names of azure.ai.ml's load_* functions).
LOADERS = {
    "component": "load_component",
    "environment": "load_environment",
    "model": "load_model",
    "online_endpoint": "load_online_endpoint",
    "online_deployment": "load_online_deployment",
    "batch_endpoint": "load_batch_endpoint",
    "batch_deployment": "load_batch_deployment",
}
# azure-ai-ml's messages end with advice on editors; the JSON block before it is what matters.
_FAILED = re.compile(r"Validation for \w+ failed:\s*", re.S)
_LOCATION_LINE = re.compile(r"#line (\d+)$")


class Problems(list):
    """Problems found in one file, each recorded as `FILE: FIELD: message`."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def add(self, field: str | None, message: str) -> None:
        self.append(f"{self.file}: {field}: {message}" if field else f"{self.file}: {message}")


def read_yaml(path: Path, problems: Problems) -> dict[str, Any] | None:
    """The mapping in `path`, or None with the reason recorded in `problems`."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        problems.add(None, f"cannot read: {err.strerror}")
        return None
    except yaml.YAMLError as err:
        problems.add(None, f"not valid YAML: {err}")
        return None
    if not isinstance(doc, dict):
        problems.add(None, f"expected a mapping at the top level, got {type(doc).__name__}")
        return None
    return doc


@contextlib.contextmanager
def quiet_azure() -> Iterator[None]:
    """Silence azure-ai-ml's log warnings (experimental classes) while it loads YAMLs.

    azure-ai-ml gives its `azure.ai.ml` logger a level and a stderr handler of its own, so
    that logger is the one to quiet.
    """
    loggers = [logging.getLogger(name) for name in ("azure", "azure.ai.ml")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def load_entity(kind: str, path: Path | IO[str], problems: Problems) -> Any:
    """`path` (or a stream) loaded with the azure-ai-ml loader for `kind`; None if refused.

    Components are also put through azure-ai-ml's local validation (data bindings in the
    command, required inputs of pipeline nodes). Every error lands in `problems`, named by
    the field azure-ai-ml reports.
    """
    import azure.ai.ml

    loader: Callable[..., Any] = getattr(azure.ai.ml, LOADERS[kind])
    with quiet_azure():
        try:
            entity = loader(source=path)
        except Exception as err:  # marshmallow and azure-ai-ml raise several unrelated types
            for field, message in error_fields(err):
                problems.add(field, message)
            return None
        if kind == "component":
            result = entity._validate()  # the SDK's local check, as `az ml component validate`
            for error in getattr(result, "error_messages", {}).items():
                problems.add(*error)
    return entity


def error_fields(err: Exception) -> list[tuple[str | None, str]]:
    """(field, message) pairs out of an azure-ai-ml or marshmallow error."""
    messages = getattr(err, "messages", None)
    text = str(_first(messages) if messages else err)
    match = _FAILED.search(text)
    if match:
        try:
            doc, _ = json.JSONDecoder().raw_decode(text[match.end() :])
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
            return [_located(e) for e in doc["errors"] if isinstance(e, dict)]
        if isinstance(doc, dict):
            return list(_flatten(doc))
    first_line = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return [(None, f"azure-ai-ml refuses it: {first_line}")]


def _first(messages: Any) -> Any:
    return messages[0] if isinstance(messages, list) and messages else messages


def _located(error: dict[str, Any]) -> tuple[str | None, str]:
    field = error.get("path") or None
    message = _readable(str(error.get("message", "invalid")))
    line = _LOCATION_LINE.search(str(error.get("location", "")))
    if line:
        message += f" (line {line.group(1)})"
    return field, message


def _readable(message: str) -> str:
    """A union field's message (`{...}; {...}`, one dict per alternative) as plain text."""
    parts = []
    for alternative in message.split("; "):
        try:
            value = ast.literal_eval(alternative)
        except (ValueError, SyntaxError):
            return message
        parts.append(", ".join(f"{k}: {v}" for k, v in _flatten(value)))
    return " | or | ".join(parts)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Marshmallow's nested {field: [messages] | {...}} as (dotted.field, message) pairs."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        yield prefix, " ".join(value)
    elif isinstance(value, list):
        for inner in value:
            yield from _flatten(inner, prefix)
    else:
        yield prefix, str(value)
