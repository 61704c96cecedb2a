"""The benchmark: `bench/run` (see README, Performance)."""
