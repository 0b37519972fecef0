"""Builders of test fixtures shared by the test suite and the benchmarks (never imported by ``src/``)."""
