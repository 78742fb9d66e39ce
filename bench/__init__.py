"""Loopback benchmarks: `python -m bench.intake`, `python -m bench.outbound` (see each module's docstring)."""
