"""benchmarks/machine.py: the ISA kind from CPU flags, the GEMM ceiling, FLOPs per item."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import DeiTConfig

from benchmarks import machine as machine_module
from benchmarks.machine import (
    RESULTS,
    classifier_flops,
    describe,
    flops_per_item,
    fraction_of_ceiling,
    gemm_ceiling,
    header,
    isa_kind,
    parse_flags,
    results_path,
    write_results,
)

# Flag sets as Linux reports them (trimmed): this project's AMD EPYC (AVX2 only), an Ice Lake
# server (AVX-512 with VNNI), a Skylake server (AVX-512, no VNNI), Sapphire Rapids (AMX).
AVX2 = "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni"
AVX512 = AVX2 + " avx512f avx512dq avx512cd avx512bw avx512vl"
AVX512_VNNI = AVX512 + " avx512ifma avx512vbmi avx512_vnni avx512_bitalg"
AMX = AVX512_VNNI + " avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8"
TINY = {"size": 32, "max_size": 64, "repeats": 2, "budget_s": 1.0}


def cpuinfo(flags: str) -> str:
    return f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n"


@pytest.mark.parametrize(
    ("flags", "kind"),
    [(AVX2, "avx2"), (AVX512, "avx512"), (AVX512_VNNI, "avx512-vnni"), (AMX, "amx")],
)
def test_the_kind_is_the_best_matrix_isa_in_the_flags(flags, kind):
    assert isa_kind(parse_flags(cpuinfo(flags))) == kind


def test_parse_flags_reads_the_first_flags_line_only():
    text = cpuinfo(AVX2) + "\n" + cpuinfo(AMX)
    flags = parse_flags(text)
    assert {"avx2", "fma", "sha_ni"} <= flags
    assert "amx_tile" not in flags and "spectre_v1" not in flags
    assert parse_flags("processor\t: 0\n") == frozenset()


def test_without_avx2_the_kind_is_the_architecture():
    assert isa_kind(parse_flags(cpuinfo("fpu sse sse2 avx")), machine="x86_64") == "x86_64"
    assert isa_kind(frozenset({"fp", "asimd", "sve"}), machine="AArch64") == "aarch64"


def test_gemm_ceiling_on_a_tiny_size_is_positive_and_bounded():
    threads = torch.get_num_threads()
    ceiling = gemm_ceiling(threads=1, **TINY)
    assert ceiling["gflops"] > 0
    assert ceiling["size"] in (32, 64)  # doubled at most up to max_size
    assert 1 <= ceiling["products"] <= 2
    assert ceiling["threads"] == 1
    assert torch.get_num_threads() == threads  # restored


def test_the_fp32_ceiling_is_the_faster_of_torch_mm_and_onnxruntime():
    ceiling = gemm_ceiling(threads=1, **TINY)
    other = {"torch.mm": "onnxruntime_gflops", "onnxruntime": "torch_mm_gflops"}[ceiling["by"]]
    assert 0 < ceiling[other] <= ceiling["gflops"]
    bf16 = gemm_ceiling(torch.bfloat16, threads=1, **TINY)
    assert bf16["by"] == "torch.mm" and "onnxruntime_gflops" not in bf16


def test_describe_lists_the_relevant_flags_and_measures_bf16_only_where_native():
    avx2 = describe(flags=parse_flags(cpuinfo(AVX2)), **TINY)
    assert avx2["kind"] == "avx2"
    assert avx2["isa_flags"] == ["avx2", "fma"]
    assert avx2["gemm_fp32"]["gflops"] > 0
    assert avx2["gemm_bf16"] is None
    assert avx2["torch_threads"] == torch.get_num_threads()
    amx = describe(flags=parse_flags(cpuinfo(AMX)), **TINY)
    assert amx["isa_flags"] == [
        "avx2",
        "fma",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
    ]
    assert amx["gemm_bf16"]["gflops"] > 0


def test_header_names_the_kind_the_flags_and_the_ceiling():
    machine = describe(flags=parse_flags(cpuinfo(AVX512_VNNI)), **TINY)
    machine["gemm_fp32"]["gflops"] = 68.4
    text = header(machine)
    assert text.startswith("machine: avx512-vnni (avx2 fma avx512f avx512_vnni);")
    assert "fp32 GEMM 68 GFLOP/s" in text
    assert "bf16 not native" in text


def test_flops_per_item_counts_the_matrix_products_of_one_item():
    layer = torch.nn.Linear(4, 3, device="meta")
    inputs = torch.zeros(5, 4, device="meta")
    assert flops_per_item(lambda: layer(inputs), items=5) == 2 * 4 * 3

    def train_step():
        layer(inputs).sum().backward()

    # Backward: the gradient of the weight and of the input, each as large as the forward.
    layer.weight.requires_grad_(True)
    inputs.requires_grad_(True)
    assert flops_per_item(train_step, items=5) == 3 * 2 * 4 * 3


def test_fraction_of_ceiling_and_results_path():
    machine = {"kind": "avx2", "gemm_fp32": {"gflops": 68.0}}
    # The example: DeiT-base's 35.2 GFLOP an image at 1.93 images/s is the ceiling.
    assert fraction_of_ceiling(68.0 / 35.2, 35.2e9, machine) == pytest.approx(1.0)
    assert fraction_of_ceiling(1.73, 35.2e9, machine) == pytest.approx(0.8955, abs=1e-4)
    assert results_path("serving", machine) == RESULTS / "avx2" / "serving.json"


def test_results_are_written_as_json_in_the_kinds_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(machine_module, "RESULTS", tmp_path)
    path = write_results("serving", {"kind": "amx"}, {"speedup": 2.9})
    assert path == tmp_path / "amx" / "serving.json"
    assert json.loads(path.read_text()) == {"speedup": 2.9}
    assert f"wrote {path}" in capsys.readouterr().out


def test_classifier_flops_counts_a_deit_forward_and_a_training_step():
    config = DeiTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        num_labels=3,
        architectures=["DeiTForImageClassification"],
    )
    forward = classifier_flops(config)
    # Per layer and token: q, k, v, output (4 h^2) and the MLP (2 h i) multiply-adds;
    # attention scores and their use (2 t h); the patch embedding and the classifier (on the
    # [CLS] token only: DeiTForImageClassification has no distillation head).
    tokens, h, i = 16 + 2, 32, 64
    layers = 2 * (tokens * (4 * h * h + 2 * h * i) + 2 * tokens * tokens * h)
    embedding = 16 * (3 * 8 * 8) * h
    heads = h * 3
    assert forward == 2 * (layers + embedding + heads)
    # Backward costs about twice the forward (weights' and inputs' gradients).
    assert 2.5 * forward < classifier_flops(config, train=True) <= 3 * forward
