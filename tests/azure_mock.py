"""A local stand-in for `azure.ai.ml.MLClient` that records every entity it is handed."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from azure.core.exceptions import ResourceNotFoundError


@dataclass
class Call:
    """One call: which operations group, which method, a snapshot of the entity, the kwargs."""

    group: str
    method: str
    entity: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)


class _Poller:
    """What `begin_*` returns: `.result()` is the entity as Azure would echo it back."""

    def __init__(self, value: Any):
        self._value = value

    def result(self, timeout: float | None = None) -> Any:
        return self._value


class _Operations:
    """One operations group (`jobs`, `models`, ...) over a store of entities by name."""

    def __init__(self, client: MockMLClient, group: str):
        self._client = client
        self._group = group
        self.store: dict[str, Any] = {}

    def _record(self, method: str, entity: Any = None, **kwargs: Any) -> None:
        # Snapshots: the code under test mutates entities between calls (endpoint traffic).
        self._client.calls.append(Call(self._group, method, _snapshot(entity), kwargs))

    def _stored(self, entity: Any) -> Any:
        entity = _snapshot(entity)
        if self._group == "models" and getattr(entity, "version", None) is None:
            entity.version = str(sum(1 for c in self._client.calls if c.group == "models"))
        if self._group == "jobs":
            # The submitted job as Azure reports it: a name and a studio page (read-only on Job).
            name = entity.name or f"job-{len(self._client.calls)}"
            return SimpleNamespace(name=name, studio_url=f"https://ml.azure.com/runs/{name}")
        if self._group == "online_endpoints":
            entity._scoring_uri = f"https://{entity.name}.example.inference.ml.azure.com/score"
        self.store[entity.name] = entity
        return entity

    def create_or_update(self, entity: Any, **kwargs: Any) -> Any:
        self._record("create_or_update", entity, **kwargs)
        return self._stored(entity)

    def begin_create_or_update(self, entity: Any, **kwargs: Any) -> _Poller:
        self._record("begin_create_or_update", entity, **kwargs)
        return _Poller(self._stored(entity))

    def get(self, name: str, **kwargs: Any) -> Any:
        self._record("get", None, name=name, **kwargs)
        if name not in self.store:
            raise ResourceNotFoundError(f"{self._group} {name!r} not found")
        return self.store[name]

    def invoke(self, endpoint_name: str, **kwargs: Any) -> Any:
        self._record("invoke", None, endpoint_name=endpoint_name, **kwargs)
        if self._group == "online_endpoints":
            return json.dumps([{"probs": [0.9, 0.1], "labels": ["can", "carton"]}])
        return SimpleNamespace(name="batch-job-1", studio_url="https://ml.azure.com/runs/b1")


def _snapshot(entity: Any) -> Any:
    try:
        return copy.deepcopy(entity)
    except KeyError:  # PipelineJob's attribute dicts refuse deepcopy; jobs are not mutated later
        return entity


class MockMLClient:
    """Records calls in `calls`; `compute.store` may be pre-filled with existing clusters."""

    GROUPS = (
        "jobs",
        "models",
        "compute",
        "online_endpoints",
        "online_deployments",
        "batch_endpoints",
        "batch_deployments",
    )

    def __init__(self, **existing_computes: Any):
        self.calls: list[Call] = []
        for group in self.GROUPS:
            setattr(self, group, _Operations(self, group))
        self.compute.store.update(existing_computes)

    def writes(self) -> list[Call]:
        """The calls that would change something in the workspace (no get/invoke)."""
        return [c for c in self.calls if "create" in c.method]

    def of(self, group: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.group == group and method in (None, c.method)]
