"""The machine a benchmark runs on: its ISA kind, torch's cores and a measured GEMM ceiling.

Figures from different machines only compare as fractions of what each machine can do. Every
benchmark prints `header(describe())`, divides each throughput by the fp32 GEMM ceiling
(`fraction_of_ceiling`, with the model's FLOPs from `flops_per_item`) and writes its results
to `results_path(name, kind)`: one folder per machine kind.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForImageClassification, PretrainedConfig

# The x86 flags that decide which kernels torch and ONNX Runtime can use, lowest level first.
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# deitkit is not imported here: bench_train's baseline process must not load it (its peak RSS).
# Native bf16 matrix instructions, as deitkit.precision decides (elsewhere torch emulates it).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
RESULTS = Path(__file__).parent / "results"
# One product must take at least this long to be timed well (and to reach the ceiling: small
# products stop short of it on many cores), so the size doubles until it does.
MIN_PRODUCT_S = 0.1
GEMM_START_SIZE = 1024
GEMM_MAX_SIZE = 8192
GEMM_REPEATS = 5
GEMM_BUDGET_S = 3.0


def parse_flags(cpuinfo: str) -> frozenset[str]:
    """The flags of the first `flags` line of a /proc/cpuinfo text (empty when none)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_flags() -> frozenset[str]:
    """This machine's CPU flags (empty where there is no /proc/cpuinfo)."""
    try:
        return parse_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


def isa_kind(flags: Iterable[str], machine: str | None = None) -> str:
    """The machine kind, named by its best matrix instructions.

    `amx` (AMX tiles), `avx512-vnni`, `avx512` (AVX-512F), `avx2`; anything else is named
    by the architecture (`platform.machine()`, e.g. `aarch64`, or `x86_64` before AVX2).
    """
    flags = set(flags)
    if "amx_tile" in flags:
        return "amx"
    if "avx512f" in flags:
        return "avx512-vnni" if "avx512_vnni" in flags else "avx512"
    if "avx2" in flags:
        return "avx2"
    return (machine or platform.machine() or "unknown").lower()


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gemm_ceiling(
    dtype: torch.dtype = torch.float32,
    *,
    threads: int | None = None,
    size: int = GEMM_START_SIZE,
    max_size: int = GEMM_MAX_SIZE,
    repeats: int = GEMM_REPEATS,
    budget_s: float = GEMM_BUDGET_S,
) -> dict:
    """GFLOP/s of the best of `repeats` square `torch.mm`s (fp32: or of ONNX Runtime's MatMul
    on the same operands, when faster): what this CPU does right now.

    The size doubles from `size` (to `max_size` at most) until one product takes
    MIN_PRODUCT_S; then the products are timed until `repeats` are done or `budget_s` has
    passed (the doubling included), so a call is bounded on any machine.

    Args:
        dtype: the operands' dtype.
        threads: torch threads to measure on (default: torch's current count).
        size: the first side length tried.
        max_size: the largest side length tried.
        repeats: timed products wanted.
        budget_s: seconds after which no further product starts.

    Returns:
        `{"gflops", "size", "threads", "products", "by"}` ("torch.mm" or "onnxruntime"), and
        the other library's figure (`onnxruntime_gflops` or `torch_mm_gflops`) where measured.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        while True:
            a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
            out = torch.empty(size, size, dtype=dtype)
            _product_s(a, b, out)  # warm-up: packing buffers, the thread pool
            seconds = _product_s(a, b, out)
            within = time.perf_counter() - start < budget_s
            if seconds >= MIN_PRODUCT_S or size * 2 > max_size or not within:
                break
            size *= 2
        times = [seconds]
        while len(times) < repeats and time.perf_counter() - start < budget_s:
            times.append(_product_s(a, b, out))
        result = {
            "gflops": 2 * size**3 / min(times) / 1e9,
            "size": size,
            "threads": torch.get_num_threads(),
            "products": len(times),
            "by": "torch.mm",
        }
        if dtype == torch.float32:
            result = _with_onnxruntime(result, a.numpy(), b.numpy(), repeats)
        return result
    finally:
        torch.set_num_threads(before)


def _with_onnxruntime(result: dict, a, b, repeats: int) -> dict:
    """`result` raised to ONNX Runtime's MatMul on the same operands when that is faster.

    ONNX Runtime's own GEMM (MLAS) beats the BLAS behind torch.mm on some CPUs (1.2x on an
    AVX2-only AMD EPYC), and the ONNX engines run on it: a ceiling below what an engine
    reaches is no ceiling. Without onnx and onnxruntime installed, torch.mm's figure stands.
    """
    try:
        import onnxruntime
        from onnx import TensorProto, helper
    except ImportError:
        return result
    size = result["size"]
    spec = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "abc"]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", spec[:2], spec[2:]
    )
    # IR 8 / opset 17: old enough for every onnxruntime deitkit supports.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = result["threads"]
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feeds = {"a": a, "b": b}
    session.run(None, feeds)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    gflops = 2 * size**3 / min(times) / 1e9
    if gflops <= result["gflops"]:
        return {**result, "onnxruntime_gflops": gflops}
    return {**result, "gflops": gflops, "torch_mm_gflops": result["gflops"], "by": "onnxruntime"}


def _product_s(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> float:
    start = time.perf_counter()
    torch.mm(a, b, out=out)
    return time.perf_counter() - start


def describe(*, flags: frozenset[str] | None = None, **gemm) -> dict:
    """The machine: kind, CPU, ISA flags present, cores, fp32 (and native bf16) GEMM ceilings.

    Args:
        flags: the CPU flags (default: this machine's).
        **gemm: passed to `gemm_ceiling` (tests measure a tiny size).
    """
    flags = cpu_flags() if flags is None else flags
    return {
        "kind": isa_kind(flags),
        "cpu": cpu_name(),
        "isa_flags": [flag for flag in ISA_FLAGS if flag in flags],
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gemm_fp32": gemm_ceiling(torch.float32, **gemm),
        # Emulated bf16 is several times slower than fp32: no ceiling to compare against.
        "gemm_bf16": gemm_ceiling(torch.bfloat16, **gemm) if BF16_FLAGS & flags else None,
        "loadavg_1m": os.getloadavg()[0],
    }


def header(machine: dict) -> str:
    """Two lines for a benchmark's output: the machine and its ceiling, which the figures
    below are fractions of."""
    fp32, bf16 = machine["gemm_fp32"], machine["gemm_bf16"]
    flags = " ".join(machine["isa_flags"]) or "none of " + " ".join(ISA_FLAGS)
    bf16_text = f"bf16 {bf16['gflops']:.0f} GFLOP/s" if bf16 else "bf16 not native"
    return (
        f"machine: {machine['kind']} ({flags}); {machine['cpu']}; "
        f"{machine['torch_threads']} torch threads of {machine['cpus']} CPUs; "
        f"load {machine['loadavg_1m']:.1f}\n"
        f"ceiling: fp32 GEMM {fp32['gflops']:.0f} GFLOP/s ({fp32.get('by', 'torch.mm')} "
        f"{fp32['size']}x{fp32['size']}, best of {fp32['products']}{_other(fp32)}), "
        f"{bf16_text}; "
        "'of ceiling' = FLOPs done per second / fp32 ceiling"
    )


def _other(fp32: dict) -> str:
    """The slower of the two GEMMs measured, for the header."""
    if "torch_mm_gflops" in fp32:
        return f"; torch.mm {fp32['torch_mm_gflops']:.0f}"
    if "onnxruntime_gflops" in fp32:
        return f"; onnxruntime {fp32['onnxruntime_gflops']:.0f}"
    return ""


def flops_per_item(run: Callable[[], object], items: int) -> float:
    """FLOPs of one item: `run()` (a model call on `items` items, on any device, `meta` too)
    counted by torch's FlopCounterMode (matrix products and convolutions, backward included
    when `run` calls it), divided by `items`."""
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops() / items


def classifier_flops(config: PretrainedConfig, *, train: bool = False) -> float:
    """FLOPs per image of the transformers image classifier `config` describes.

    A forward pass, or with `train` a forward and backward through the loss (a training
    step's matrix work, the optimizer aside). Counted on the meta device: nothing is computed
    and no weights are allocated, so DeiT-base takes about a second.
    """
    batch = 2
    with torch.device("meta"):
        model = AutoModelForImageClassification.from_config(config)
        side = config.image_size
        pixels = torch.zeros(batch, config.num_channels, side, side)
        labels = torch.zeros(batch, dtype=torch.long)
    model.train(train)

    def step() -> None:
        if train:
            model(pixel_values=pixels, labels=labels).loss.backward()
        else:
            with torch.no_grad():
                model(pixel_values=pixels)

    return flops_per_item(step, batch)


def fraction_of_ceiling(items_per_s: float, flops_per_item: float, machine: dict) -> float:
    """`items_per_s` as a fraction of what the fp32 GEMM ceiling would do on these FLOPs."""
    return items_per_s * flops_per_item / (machine["gemm_fp32"]["gflops"] * 1e9)


def results_path(name: str, machine: dict) -> Path:
    """benchmarks/results/<kind>/<name>.json."""
    return RESULTS / machine["kind"] / f"{name}.json"


def write_results(name: str, machine: dict, results: dict) -> Path:
    """Write `results` to `results_path(name, machine)` as JSON, say where, and return it."""
    path = results_path(name, machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return path
