"""Benchmark scripts: they print numbers and write JSON to `bench/results/`; they are not tests.

    .venv/bin/python -m bench.throughput     LA training and evaluation throughput
    .venv/bin/python -m bench.swap           adapter swapping cost and parameter counts
"""
