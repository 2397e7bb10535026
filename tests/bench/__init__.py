"""The benchmarks, run small enough for CI."""
