"""Helpers shared by the test suites and the benchmarks: in-memory fakes, image factory, stack settings."""
