"""Benchmarks (GitHub issue 8): dataset generator, load generator and the bench-only server
configuration. Run with ``bash bench/run.sh [--quick]``; see docs/benchmarks.md."""
