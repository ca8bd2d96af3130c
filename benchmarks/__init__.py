"""dipkit's benchmark suite (issue 5): probe cost, fit throughput, batched fitting.

Run it with ``.venv/bin/python -m benchmarks.run`` (``--help`` for the options); it writes one
JSON file under ``benchmarks/results/``, and ``.venv/bin/python -m benchmarks.table`` prints the
markdown table of the README's "Performance" section from those files. Not part of the unit
tests (``benchmarks/`` is excluded from pytest collection).
"""
