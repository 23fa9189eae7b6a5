"""Benchmarks (not tests): run each as a module from the repository root."""
