"""Benchmarks: each `bench_*.py` module's `main()` prints a table, writes results/<kind>/."""
