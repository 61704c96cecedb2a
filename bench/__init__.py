"""The benchmark: `bench/run` (see docs/performance.md)."""
