"""Run every benchmark: `python -m benchmarks` calls each `bench_*.py` module's `main()`."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path


def main() -> None:
    names = sorted(
        info.name
        for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if info.name.startswith("bench_")
    )
    for name in names:
        print(f"== {name}")
        importlib.import_module(f"{__package__}.{name}").main()


if __name__ == "__main__":
    main()
