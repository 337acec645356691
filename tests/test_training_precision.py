"""Training precision: what each requested name runs as on GPUs and CPUs, and why."""

from __future__ import annotations

import pytest
import torch

import deitkit.training.precision as precision_module
from deitkit.errors import ConfigError
from deitkit.precision import Precision
from deitkit.training.precision import resolve_precision


@pytest.fixture
def machine(monkeypatch):
    """Sets what the machine has: `machine(gpu_bf16=..., cpu_bf16=...)`."""

    def set_up(*, gpu_bf16: bool = False, cpu_bf16: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: gpu_bf16)
        monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: cpu_bf16)

    return set_up


@pytest.mark.parametrize(
    ("requested", "cuda", "gpu_bf16", "cpu_bf16", "expected"),
    [
        ("fp32", True, True, True, Precision("fp32", "requested")),
        ("fp32", False, False, True, Precision("fp32", "requested")),
        ("bf16", True, True, False, Precision("bf16", "requested")),
        ("bf16", False, False, True, Precision("bf16", "requested")),
        ("fp16", True, True, False, Precision("fp16", "requested")),
        (
            "fp16",
            False,
            False,
            True,
            Precision("bf16", "fp16 runs on GPUs only; this CPU has native bf16"),
        ),
        (
            "fp16",
            False,
            False,
            False,
            Precision("fp32", "fp16 runs on GPUs only and this CPU has no native bf16"),
        ),
        ("auto", True, True, False, Precision("bf16", "GPU supports bf16")),
        ("auto", True, False, True, Precision("fp16", "GPU without bf16")),
        ("auto", False, False, True, Precision("bf16", "CPU has AMX/AVX512-BF16")),
        ("auto", False, False, False, Precision("fp32", "CPU without native bf16")),
    ],
)
def test_requested_precision_resolves_to_what_the_machine_runs(
    machine, requested, cuda, gpu_bf16, cpu_bf16, expected
):
    machine(gpu_bf16=gpu_bf16, cpu_bf16=cpu_bf16)
    assert resolve_precision(requested, cuda=cuda) == expected


@pytest.mark.parametrize(("cuda", "gpu_bf16"), [(True, False), (False, False)])
def test_bf16_without_support_is_refused(machine, cuda, gpu_bf16):
    machine(gpu_bf16=gpu_bf16, cpu_bf16=False)
    with pytest.raises(ConfigError, match="--precision bf16: this machine has no bf16 support"):
        resolve_precision("bf16", cuda=cuda)
